# ibwatch's push path, AWS side, as Terraform: the same resources as
# deploy/events/cloudformation.yaml (which carries the longer explanations; the tests
# in tests/deploy/test_events_wiring.py check that both wire the same things).
#
#   cd deploy/events/terraform && terraform init && terraform apply
#
# Then put the queue_url output into the daemon's `[events] queue_url`, and grant the
# daemon's role deploy/events/iam-policy-events.json. Apply once per Region that
# builds images (the provider's region): Image Builder sends its events to the default
# event bus of the Region where the build runs.
#
# Sources: Image Builder User Guide, "Amazon EventBridge integration in Image Builder"
# (the event); EventBridge User Guide, "Using resource-based policies for Amazon
# EventBridge", "Amazon SQS permissions" (the queue policy, and no role_arn on an SQS
# target); the provider's docs for aws_sqs_queue, aws_sqs_queue_policy,
# aws_cloudwatch_event_rule and aws_cloudwatch_event_target.

locals {
  # Every state change of every image in this account and Region; the same pattern
  # as cloudformation.yaml's rule.
  event_pattern = {
    source        = ["aws.imagebuilder"]
    "detail-type" = ["EC2 Image Builder Image State Change"]
  }
}

resource "aws_sqs_queue" "dead_letter" {
  name = "${var.name_prefix}-dlq"
  # The longest SQS allows: a standard queue's message keeps its first enqueue time
  # when it moves here, so this queue must outlast the main one's retention.
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

resource "aws_sqs_queue" "events" {
  name                      = var.name_prefix
  message_retention_seconds = var.message_retention_seconds
  # SSE-SQS: EventBridge sends to it with the queue policy alone (a customer-managed
  # KMS key would need a key policy for events.amazonaws.com too).
  sqs_managed_sse_enabled = true
  # For receives that set no visibility timeout of their own (an operator's
  # `aws sqs receive-message`); the daemon sets its own on every receive.
  visibility_timeout_seconds = 60
  # Long polling, 20 s, the most SQS allows; the daemon asks for `[events] wait_time`.
  receive_wait_time_seconds = 20
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter.arn
    maxReceiveCount     = var.max_receive_count
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_rule" "image_state_change" {
  name        = "${var.name_prefix}-image-state"
  description = "EC2 Image Builder Image State Change events to the ibwatch queue: each one makes ibwatch poll that build at once."
  # On the default bus (no event_bus_name): where AWS services send their events.
  state         = "ENABLED"
  event_pattern = jsonencode(local.event_pattern)
  tags          = var.tags
}

resource "aws_cloudwatch_event_target" "queue" {
  rule      = aws_cloudwatch_event_rule.image_state_change.name
  target_id = "ibwatch-queue"
  # No role_arn: SQS targets are authorised by the queue policy below.
  arn = aws_sqs_queue.events.arn
}

# EventBridge may send to the queue on behalf of this rule only (aws:SourceArn):
# without the condition any rule, in any account, could fill it.
data "aws_iam_policy_document" "queue" {
  # The provider's aws_sqs_queue page warns that a queue policy without an explicit
  # Version "2012-10-17" can leave the apply hanging.
  version = "2012-10-17"

  statement {
    sid       = "ImageStateChangesFromTheRule"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.image_state_change.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "events" {
  queue_url = aws_sqs_queue.events.url
  policy    = data.aws_iam_policy_document.queue.json
}
