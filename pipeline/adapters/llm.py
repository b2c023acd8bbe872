"""The configured `LLM`, or None for the extractive default (HANRAG_LLM=none|openai|bedrock|sagemaker).

The AWS adapters are imported only when chosen, so the embedded default never needs boto3.
"""

from __future__ import annotations

from pipeline.config import LLMSettings
from pipeline.errors import PipelineError
from pipeline.ports import LLM


class LLMNotConfigured(PipelineError):
    """HANRAG_LLM names a backend whose required settings are missing."""


def build_llm(settings: LLMSettings) -> LLM | None:
    if settings.kind == "none":
        return None
    if settings.kind == "openai":
        from pipeline.adapters.openai_compat import OpenAICompatibleLLM

        if not settings.url or not settings.model:
            raise LLMNotConfigured("HANRAG_LLM=openai needs HANRAG_LLM_URL (e.g. http://127.0.0.1:11434/v1) "
                                   "and HANRAG_LLM_MODEL")
        return OpenAICompatibleLLM(settings.url, settings.model, settings.api_key, settings.timeout)
    if settings.kind == "bedrock":
        import boto3

        from pipeline.adapters.aws.llm import DEFAULT_BEDROCK_MODEL, BedrockLLM

        return BedrockLLM(boto3.client("bedrock-runtime"), settings.model or DEFAULT_BEDROCK_MODEL)
    if settings.kind == "sagemaker":
        import boto3

        from pipeline.adapters.aws.llm import SageMakerLLM

        if not settings.endpoint:
            raise LLMNotConfigured("HANRAG_LLM=sagemaker needs HANRAG_LLM_ENDPOINT (the endpoint name)")
        return SageMakerLLM(boto3.client("sagemaker-runtime"), settings.endpoint)
    raise LLMNotConfigured(f"unknown HANRAG_LLM {settings.kind!r}: use none, openai, bedrock or sagemaker")
