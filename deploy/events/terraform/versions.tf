# The AWS provider's major version is pinned, since a major release may rename or drop
# arguments. 6 is the current major; `state` on aws_cloudwatch_event_rule (which
# replaced `is_enabled`) needs 5.27 or later, so 5.x users can lower this to
# ">= 5.27, < 7".
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }
}
