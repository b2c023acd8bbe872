"""The CDK app: `npx cdk synth` / `npx cdk deploy` run `python -m infra.app` (cdk.json).

cdk-nag's AwsSolutions checks run as a policy validation plugin on every synth: a finding that is
neither fixed nor acknowledged with a reason (in infra/stack.py) stops the synth.
"""

from __future__ import annotations

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.stack import HanragStack


def build_app(outdir: str | None = None, context: dict | None = None) -> tuple[cdk.App, HanragStack]:
    """`context` as `-c key=value` gives it, for example `{"searchSize": "production"}`."""
    app = cdk.App(outdir=outdir, context=context) if outdir or context else cdk.App()
    # environment-agnostic: the account and region come from the credentials `cdk deploy` runs with
    stack = HanragStack(app, "Hanrag", description="hanrag: Korean-first document ingestion for RAG")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


if __name__ == "__main__":
    build_app()[0].synth()
