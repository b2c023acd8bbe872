"""CloudFormation custom resource: prepare the OpenSearch domain once per deployment.

With fine-grained access control on, IAM alone does not let a Lambda role read or write an index;
the domain's security plugin must map the role to an OpenSearch role. This function runs as the
domain's master user and (1) creates two roles over `hanrag-*` indices and aliases only:
`hanrag_pipeline`, which may create, write and delete them, and `hanrag_reader`, which may only search
and read them; (2) maps the ingest functions' IAM roles (`RoleArns`) to the first and the chat
functions' (`ReaderRoleArns`) to the second. Per-user indices and their aliases are
created later, on first use, by the index stage (`pipeline.adapters.opensearch`); hybrid ranking is
fused by the client, so the domain needs no search pipeline.
"""

from __future__ import annotations

import os

from pipeline.adapters.opensearch import opensearch_client

ROLE = "hanrag_pipeline"
READER_ROLE = "hanrag_reader"


def role_body() -> dict:
    return {
        "cluster_permissions": ["cluster_composite_ops"],  # _msearch, _mget, _bulk, _aliases
        "index_permissions": [{
            "index_patterns": ["hanrag-*"],  # `hanrag-<user>` aliases and `hanrag-<user>.<model>.<dim>` indices
            "allowed_actions": ["crud", "create_index", "delete_index", "manage_aliases", "indices:admin/get",
                                "indices:admin/refresh", "indices:admin/mapping/put", "indices:monitor/stats"],
        }],
    }


def reader_role_body() -> dict:
    """What a chat search sends: `GET /_alias/hanrag-<user>`, `POST /_msearch`, `POST /<index>/_mget`."""
    return {
        "cluster_permissions": ["cluster_composite_ops_ro"],  # _msearch, _mget, no _bulk
        "index_permissions": [{
            "index_patterns": ["hanrag-*"],
            "allowed_actions": ["read", "indices:admin/aliases/get"],
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
    perform("PUT", f"/_plugins/_security/api/roles/{READER_ROLE}", body=reader_role_body())
    # a PUT replaces the mapping: a role that moved from writer to reader loses its write access
    perform("PUT", f"/_plugins/_security/api/rolesmapping/{READER_ROLE}",
            body=role_mapping_body(props.get("ReaderRoleArns", [])))
    return {"PhysicalResourceId": "hanrag-search-setup"}
