"""CloudFormation custom resource: prepare the OpenSearch domain once per deployment.

With fine-grained access control on, IAM alone does not let a Lambda role read or write an index;
the domain's security plugin must map the role to an OpenSearch role. This function runs as the
domain's master user and (1) creates the `hanrag_pipeline` role — only `hanrag-*` indices and aliases —
and (2) maps the ingest and chat functions' IAM roles to it. Per-user indices and their aliases are
created later, on first use, by the index stage (`pipeline.adapters.opensearch`); hybrid ranking is
fused by the client, so the domain needs no search pipeline.
"""

from __future__ import annotations

import os

from pipeline.adapters.opensearch import opensearch_client

ROLE = "hanrag_pipeline"


def role_body() -> dict:
    return {
        "cluster_permissions": ["cluster_composite_ops"],  # _msearch, _mget, _bulk, _aliases
        "index_permissions": [{
            "index_patterns": ["hanrag-*"],  # `hanrag-<user>` aliases and `hanrag-<user>.<model>.<dim>` indices
            "allowed_actions": ["crud", "create_index", "delete_index", "manage_aliases", "indices:admin/get",
                                "indices:admin/refresh", "indices:admin/mapping/put", "indices:monitor/stats"],
        }],
    }


def role_mapping_body(role_arns: list[str]) -> dict:
    return {"backend_roles": sorted(set(role_arns))}


def on_event(event: dict, context) -> dict:
    """Create/Update put the role, its mapping and the pipeline; Delete leaves the domain (it goes too)."""
    if event["RequestType"] == "Delete":
        return {"PhysicalResourceId": event.get("PhysicalResourceId", "hanrag-search-setup")}
    props = event["ResourceProperties"]
    endpoint = props["Endpoint"].removeprefix("https://")
    client = opensearch_client(f"https://{endpoint}", "sigv4", region=os.environ["AWS_REGION"])
    perform = client.transport.perform_request
    perform("PUT", f"/_plugins/_security/api/roles/{ROLE}", body=role_body())
    perform("PUT", f"/_plugins/_security/api/rolesmapping/{ROLE}", body=role_mapping_body(props["RoleArns"]))
    return {"PhysicalResourceId": "hanrag-search-setup"}
