variable "name_prefix" {
  description = "Name of the queue; the dead-letter queue is <name_prefix>-dlq and the rule <name_prefix>-image-state. deploy/events/iam-policy-events.json names the default."
  type        = string
  default     = "ibwatch-events"

  # Queue names take letters, digits, - and _ (80 at most); rule names 64 at most:
  # 40 leaves room for the suffixes. The same limits as cloudformation.yaml.
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.name_prefix))
    error_message = "name_prefix: 1 to 40 letters, digits, - or _."
  }
}

variable "message_retention_seconds" {
  # SQS's own default, 4 days: a daemon stopped over a weekend still finds the events
  # of builds started meanwhile (what `[events] follow_all` adopts builds from).
  description = "How long the queue keeps an event nobody received (60 s to 14 days)."
  type        = number
  default     = 345600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds: 60 to 1209600 (14 days)."
  }
}

variable "max_receive_count" {
  description = "Receives without a delete after which SQS moves a message to the dead-letter queue (the daemon failing on it, or crashing, each time)."
  type        = number
  default     = 5

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count: 1 to 1000."
  }
}

variable "tags" {
  description = "Tags for the queues and the rule."
  type        = map(string)
  default     = {}
}
