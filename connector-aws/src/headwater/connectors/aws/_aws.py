"""The AWS client options and error translation, now in connector-base (``headwater.connectors.base.aws``).

Re-exported here for the connector's modules.
"""

from headwater.connectors.base.aws import (
    AwsClientOptions,
    classify_aws_error,
    error_code,
    translate,
)

__all__ = ["AwsClientOptions", "classify_aws_error", "error_code", "translate"]
