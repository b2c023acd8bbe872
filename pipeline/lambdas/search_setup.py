"""CloudFormation custom resource: prepare the OpenSearch domain once per deployment.

With fine-grained access control on, IAM alone does not let a Lambda role read or write an index;
the domain's security plugin must map the role to an OpenSearch role. This function runs as the
domain's master user and (1) creates the `hanrag_pipeline` role — only `hanrag-*` indices and the
search-pipeline calls — (2) maps the ingest and chat functions' IAM roles to it, and (3) puts the
hybrid search pipeline. Per-user indices are created later, on first use, by the index stage.
"""

from __future__ import annotations

import os

from pipeline.adapters.aws.opensearch import PIPELINE_NAME, opensearch_client, search_pipeline_body
from pipeline.stages.index import SearchOptions

ROLE = "hanrag_pipeline"


def role_body() -> dict:
    return {
        "cluster_permissions": ["cluster_composite_ops", "cluster:admin/search/pipeline/get",
                                "cluster:admin/search/pipeline/put"],
        "index_permissions": [{
            "index_patterns": ["hanrag-*"],
            "allowed_actions": ["crud", "create_index", "indices:admin/get", "indices:admin/mapping/put",
                                "indices:monitor/stats"],
        }],
    }


def role_mapping_body(role_arns: list[str]) -> dict:
    return {"backend_roles": sorted(set(role_arns))}


def on_event(event: dict, context) -> dict:
    """Create/Update put the role, its mapping and the pipeline; Delete leaves the domain (it goes too)."""
    if event["RequestType"] == "Delete":
        return {"PhysicalResourceId": event.get("PhysicalResourceId", "hanrag-search-setup")}
    props = event["ResourceProperties"]
    client = opensearch_client(props["Endpoint"], os.environ["AWS_REGION"])
    perform = client.transport.perform_request
    perform("PUT", f"/_plugins/_security/api/roles/{ROLE}", body=role_body())
    perform("PUT", f"/_plugins/_security/api/rolesmapping/{ROLE}", body=role_mapping_body(props["RoleArns"]))
    options = SearchOptions(dense_weight=float(props.get("DenseWeight", 0.5)))
    perform("PUT", f"/_search/pipeline/{PIPELINE_NAME}", body=search_pipeline_body(options))
    return {"PhysicalResourceId": "hanrag-search-setup"}
