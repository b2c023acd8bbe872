"""AWS CDK app for hanrag (the AWS deployment issue fills this package)."""
