"""Resending sendings in bulk (a named list, a filter or a cause group).

One sending at a time (resend, discard) is `invoice_outbox.admin.sending_actions`.  A bulk
resend is a `ResendJob`: created here (with a preview of what it would do), worked through by
`resend_loop` in keyset batches.  Its *members* are the sendings matching the selection when
the snapshot was taken; a member is resent only if it is unchanged since the snapshot, so a
job never undoes what happened after the preview.  Functions never commit.

The modules, by topic (import the names from here):

- `refusals`: what a resend or discard refuses, as the domain's kinds of error (the bottom);
- `selection`: a `Selection` and its `Plan` (which statuses move), stored on the job as JSON;
- `previews`: what a plan would do now (counts, a sample, what is left out) and its notes;
- `jobs`: creating a job or a dry run, and the API's picture of jobs;
- `batches`: a job's next batch of members, and what the batches that ran changed.
"""

from __future__ import annotations

from invoice_outbox.admin.resends.batches import SHOWN_MEMBERS, job_members, next_batch
from invoice_outbox.admin.resends.jobs import DEFAULT_RATE, create_job, job_view, recent_jobs
from invoice_outbox.admin.resends.previews import SAMPLE_SIZE, Preview, notes, preview
from invoice_outbox.admin.resends.refusals import (
    DiscardedResendNotAllowed,
    DryRunNotFound,
    ForceNotAllowed,
    ResendConflict,
    ResendInvalid,
    ResendJobNotFound,
    ResendNeedsCorrection,
    ResendRefused,
    SendingNotFound,
)
from invoice_outbox.admin.resends.selection import (
    MAX_SENDING_IDS,
    Plan,
    Selection,
    discard_plan,
    job_plan,
    plan,
)

__all__ = [
    "DEFAULT_RATE",
    "MAX_SENDING_IDS",
    "SAMPLE_SIZE",
    "SHOWN_MEMBERS",
    "DiscardedResendNotAllowed",
    "DryRunNotFound",
    "ForceNotAllowed",
    "Plan",
    "Preview",
    "ResendConflict",
    "ResendInvalid",
    "ResendJobNotFound",
    "ResendNeedsCorrection",
    "ResendRefused",
    "Selection",
    "SendingNotFound",
    "create_job",
    "discard_plan",
    "job_members",
    "job_plan",
    "job_view",
    "next_batch",
    "notes",
    "plan",
    "preview",
    "recent_jobs",
]
