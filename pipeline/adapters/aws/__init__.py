"""AWS adapters behind the ports of `pipeline.ports`: S3, DynamoDB, SNS, SageMaker, Bedrock, OpenSearch.

Each adapter takes its boto3 client (or OpenSearch client) in `__init__`, so a test hands it a moto or
stubbed client and a Lambda handler builds the real one once per container.
"""
