"""Step types, by the name used in workflow definitions."""

from __future__ import annotations

from flowd.steps.ai import AiStep
from flowd.steps.base import StepType
from flowd.steps.channels import SendPushStep, SendSmsStep, SlackStep
from flowd.steps.code import CodeStep
from flowd.steps.contact import UpdateContactStep
from flowd.steps.http import HttpStep, WebhookStep
from flowd.steps.logic import ConditionStep, ExitStep, SetStep, SplitStep
from flowd.steps.messaging import SendEmailStep
from flowd.steps.orchestration import (
    ApprovalStep,
    EmitEventStep,
    LoopStep,
    RunWorkflowStep,
)
from flowd.steps.timing import WaitForEventStep, WaitStep

STEP_TYPES: dict[str, StepType] = {
    step.name: step for step in (
        WaitStep(), WaitForEventStep(), ConditionStep(), SplitStep(), UpdateContactStep(),
        SetStep(), WebhookStep(), HttpStep(), ExitStep(), SendEmailStep(), ApprovalStep(),
        RunWorkflowStep(), LoopStep(), EmitEventStep(), SendSmsStep(), SendPushStep(),
        SlackStep(), CodeStep(), AiStep())
}

# Names accepted on save and normalized to the canonical type.
ALIASES = {"delay": "wait", "branch": "condition", "update_profile": "update_contact",
           "email": "send_email", "sms": "send_sms", "push": "send_push"}
