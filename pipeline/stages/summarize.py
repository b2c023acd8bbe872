"""Summarize: the document's summary, made by the shared summarizer (`pipeline.summarizer`), which
chat also uses to summarize a conversation."""

from pipeline.summarizer import summarize

__all__ = ["summarize"]
