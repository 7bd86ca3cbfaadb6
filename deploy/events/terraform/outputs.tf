output "queue_url" {
  description = "The daemon's `[events] queue_url`."
  value       = aws_sqs_queue.events.url
}

output "queue_arn" {
  description = "The Resource of the daemon's IAM statement (deploy/events/iam-policy-events.json)."
  value       = aws_sqs_queue.events.arn
}

output "dead_letter_queue_url" {
  description = "Where messages received max_receive_count times without a delete are kept."
  value       = aws_sqs_queue.dead_letter.url
}

output "rule_arn" {
  description = "The rule the queue policy admits (aws:SourceArn)."
  value       = aws_cloudwatch_event_rule.image_state_change.arn
}
