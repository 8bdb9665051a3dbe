"""SEMI E10 equipment states with reasons, and the mappings from PackML and OPC UA Machinery.

SEMI E10 basic states are canonical for every line type (DESIGN.md). Each state carries a reason
sub-code; the allowed reasons per state are fixed here so that every box classifies time the same way
(KPI.md section 1 maps state + reason to the ISO 22400 time elements).
"""

from __future__ import annotations

from enum import StrEnum

from twinline.uns.errors import ContractError


class E10(StrEnum):
    """SEMI E10 basic equipment states."""

    PRD = "PRD"  # productive
    SBY = "SBY"  # standby
    ENG = "ENG"  # engineering
    SDT = "SDT"  # scheduled downtime
    UDT = "UDT"  # unscheduled downtime
    NST = "NST"  # non-scheduled


class Reason(StrEnum):
    """Reason sub-codes; which state allows which reason is in REASONS."""

    # PRD
    RUN = "run"
    RUN_UP = "run_up"  # producing after a changeover, before the rate is back (still PRD time)
    REWORK = "rework"
    # SBY
    STARVED = "starved"
    BLOCKED = "blocked"
    NO_OPERATOR = "no_operator"
    NO_PRODUCT = "no_product"
    IDLE = "idle"
    # ENG
    ENGINEERING = "engineering"
    PROCESS_QUALIFICATION = "process_qualification"
    # SDT
    SETUP = "setup"  # changeover / setup: ISO 22400 AUST, a loss
    PREVENTIVE_MAINTENANCE = "preventive_maintenance"
    CONSUMABLES = "consumables"
    TEST = "test"
    # UDT
    FAILURE = "failure"
    REPAIR = "repair"
    MAINTENANCE_DELAY = "maintenance_delay"
    MINOR_STOP = "minor_stop"
    # NST
    NON_SCHEDULED = "non_scheduled"
    SHUTDOWN = "shutdown"


REASONS: dict[E10, frozenset[Reason]] = {
    E10.PRD: frozenset({Reason.RUN, Reason.RUN_UP, Reason.REWORK}),
    E10.SBY: frozenset({Reason.STARVED, Reason.BLOCKED, Reason.NO_OPERATOR, Reason.NO_PRODUCT, Reason.IDLE}),
    E10.ENG: frozenset({Reason.ENGINEERING, Reason.PROCESS_QUALIFICATION}),
    E10.SDT: frozenset({Reason.SETUP, Reason.PREVENTIVE_MAINTENANCE, Reason.CONSUMABLES, Reason.TEST}),
    E10.UDT: frozenset({Reason.FAILURE, Reason.REPAIR, Reason.MAINTENANCE_DELAY, Reason.MINOR_STOP}),
    E10.NST: frozenset({Reason.NON_SCHEDULED, Reason.SHUTDOWN}),
}

DEFAULT_REASON: dict[E10, Reason] = {
    E10.PRD: Reason.RUN,
    E10.SBY: Reason.IDLE,
    E10.ENG: Reason.ENGINEERING,
    E10.SDT: Reason.PREVENTIVE_MAINTENANCE,
    E10.UDT: Reason.FAILURE,
    E10.NST: Reason.NON_SCHEDULED,
}


def parse_state(state: str, reason: str, field: str = "") -> tuple[E10, Reason]:
    """Validate a state and its reason; raise ContractError naming ``field`` when they do not fit."""
    try:
        e10 = E10(state)
    except ValueError:
        raise ContractError(f"{field}.state" if field else "state",
                            f"{state!r} is not a SEMI E10 state (one of {', '.join(E10)})") from None
    try:
        why = Reason(reason)
    except ValueError:
        raise ContractError(f"{field}.reason" if field else "reason", f"{reason!r} is not a known reason") from None
    if why not in REASONS[e10]:
        allowed = ", ".join(sorted(REASONS[e10]))
        raise ContractError(f"{field}.reason" if field else "reason",
                            f"reason {why.value!r} does not belong to state {e10.value} (allowed: {allowed})")
    return e10, why


# PackML (ISA-TR88.00.02) state -> E10 state and reason. Execute is production; the wait states are
# standby; Held is an internal stop (treated as unscheduled), Suspended an external one (starved /
# blocked); Stopped/Idle standby; Aborted a failure.
PACKML: dict[str, tuple[E10, Reason]] = {
    "Execute": (E10.PRD, Reason.RUN),
    "Starting": (E10.SBY, Reason.IDLE),
    "Idle": (E10.SBY, Reason.IDLE),
    "Stopped": (E10.SBY, Reason.IDLE),
    "Stopping": (E10.SBY, Reason.IDLE),
    "Resetting": (E10.SBY, Reason.IDLE),
    "Complete": (E10.SBY, Reason.NO_PRODUCT),
    "Completing": (E10.PRD, Reason.RUN),
    "Suspended": (E10.SBY, Reason.STARVED),
    "Suspending": (E10.SBY, Reason.STARVED),
    "Unsuspending": (E10.SBY, Reason.STARVED),
    "Held": (E10.UDT, Reason.MINOR_STOP),
    "Holding": (E10.UDT, Reason.MINOR_STOP),
    "Unholding": (E10.UDT, Reason.MINOR_STOP),
    "Aborting": (E10.UDT, Reason.FAILURE),
    "Aborted": (E10.UDT, Reason.FAILURE),
    "Clearing": (E10.UDT, Reason.REPAIR),
}

# OPC UA for Machinery (OPC 40001-1) MachineryItemState -> E10, following the time mapping of
# OPC 40501-1 C.2.3 (Executing -> APT, NotExecuting -> ADOT, OutOfService -> ADET, NotAvailable -> NST).
# Executing with operation mode Setup is AUST: see MACHINERY_OPERATION_MODE.
MACHINERY_ITEM_STATE: dict[str, tuple[E10, Reason]] = {
    "Executing": (E10.PRD, Reason.RUN),
    "NotExecuting": (E10.SBY, Reason.IDLE),
    "OutOfService": (E10.UDT, Reason.FAILURE),
    "NotAvailable": (E10.NST, Reason.NON_SCHEDULED),
}

# MachineryOperationMode (OPC 40001-1): while the item state is Executing, these modes override.
MACHINERY_OPERATION_MODE: dict[str, tuple[E10, Reason]] = {
    "Setup": (E10.SDT, Reason.SETUP),
    "Maintenance": (E10.SDT, Reason.PREVENTIVE_MAINTENANCE),
    "Processing": (E10.PRD, Reason.RUN),
}


def from_packml(state: str) -> tuple[E10, Reason]:
    """Map a PackML state name to (E10, reason); unknown names raise ContractError."""
    try:
        return PACKML[state]
    except KeyError:
        raise ContractError("state", f"{state!r} is not a PackML state") from None


def from_machinery(item_state: str, operation_mode: str | None = None) -> tuple[E10, Reason]:
    """Map an OPC UA MachineryItemState (and optional operation mode) to (E10, reason)."""
    try:
        mapped = MACHINERY_ITEM_STATE[item_state]
    except KeyError:
        raise ContractError("state", f"{item_state!r} is not a MachineryItemState") from None
    if item_state == "Executing" and operation_mode in MACHINERY_OPERATION_MODE:
        return MACHINERY_OPERATION_MODE[operation_mode]
    return mapped
