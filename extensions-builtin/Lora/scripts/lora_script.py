"""The built-in Lora extension's script. Loading it puts this folder on ``sys.path`` (as A1111 does for every
extension), so extensions import ``networks``, ``network``, ``lora``... by plain name; the ``<lora:...>`` tag
itself is handled by the Engine (``modules/networks``), its settings are the app's own."""
import networks  # noqa: F401 - imported at load, as A1111's lora_script does
