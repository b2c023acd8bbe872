# One image for every hanrag Lambda function; each function sets its own handler (CMD) in infra/stack.py.
# An image, not a zip: the pipeline's dependencies (Kiwi's model, numpy, pdfium, ...) unzip to more
# than the 250 MB a zip function with layers may hold. `cdk deploy` builds it with Docker.
FROM public.ecr.aws/lambda/python:3.12
WORKDIR ${LAMBDA_TASK_ROOT}
COPY pyproject.toml requirements.lock README.md ./
COPY pipeline ./pipeline
COPY chat ./chat
COPY infra/__init__.py ./infra/__init__.py
RUN pip install --no-cache-dir -c requirements.lock ".[aws]" && rm -rf /root/.cache
ENV HANRAG_OCR=0
