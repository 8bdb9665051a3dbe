"""twinline.simulators: SimPy models of panel, wafer and laptop lines with ground truth.

Offers `run_history` (a period as fast as possible into contract envelopes + truth), `serve_line` /
`LiveLine` (real time with a speed factor over an OPC UA server per line and MQTT devices), `Truth`, the
engine `LineModel` and fault injection (`twinline.simulators.faults`). Heavy adapters (asyncua, paho) are
imported by the live modules only.
"""

from twinline.simulators.engine import LineModel, Observer
from twinline.simulators.errors import LiveError, SimConfigError, SimError
from twinline.simulators.history import HistoryResult, run_history
from twinline.simulators.truth import Changeover, Truth

__all__ = ["Changeover", "HistoryResult", "LineModel", "LiveError", "Observer", "SimConfigError", "SimError", "Truth",
           "run_history"]
