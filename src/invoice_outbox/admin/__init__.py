"""Admin operations: audit log, bulk resend jobs, failure notifications."""
