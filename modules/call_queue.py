"""A1111's ``modules.call_queue``: wrappers A1111 puts around page callbacks. A thin facade; the code lives in
``modules.scripting.a1111_call_queue``."""
from modules.scripting.a1111_call_queue import (  # noqa: F401
    wrap_queued_call, wrap_gradio_gpu_call, wrap_gradio_call, wrap_gradio_call_no_job, queue_lock, get_lock,
    QueueLock,
)
