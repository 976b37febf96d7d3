"""The aws backend: the real services, provisioned from ``cloudformation/`` and driven with boto3
and awswrangler, one module per service.

Credentials and region come from boto3's usual chain (environment, profile, instance role);
nothing secret is printed or written. Resource names come from the stack's outputs when the
stack exists, else from :class:`~helpers.config.Settings`.
"""
