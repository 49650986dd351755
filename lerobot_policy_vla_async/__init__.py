"""LeRobot plugin: this project's exported models (the vla-async ONNX format) as a LeRobot 0.4.4 policy, type
`vla_async`.

LeRobot imports installed `lerobot_policy_*` distributions and finds a plugin policy by its config's registered
name (`VlaAsyncConfig` in `configuration_vla_async`, `VlaAsyncPolicy` in `modeling_vla_async`, the layout its
`get_policy_class` expects). The policy runs the model with this project's own ONNX backend (the code our policy
server runs), so both stacks of `vla-async bench lerobot` serve the same model the same way. Needs LeRobot,
onnxruntime and numpy.
"""

from lerobot_policy_vla_async.configuration_vla_async import VlaAsyncConfig
from lerobot_policy_vla_async.modeling_vla_async import VlaAsyncPolicy

__all__ = ["VlaAsyncConfig", "VlaAsyncPolicy"]
