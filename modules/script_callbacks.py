"""A1111's ``modules.script_callbacks``: the on_* callbacks. A thin facade; the code lives in ``modules.scripting.callbacks``."""
from modules.scripting.callbacks import (  # noqa: F401
    KINDS, CallbackRegistrationError, ImageSaveParams, CFGDenoiserParams, CFGDenoisedParams,
    AfterCFGCallbackParams, ExtraNoiseParams, ImageGridLoopParams, BeforeTokenCounterParams, CallbackEntry,
    CallbackFailure, CallbackRegistry, BoundCallbacks, active_registry, on_app_started, on_before_reload,
    on_model_loaded, on_ui_tabs, on_ui_train_tabs, on_ui_settings, on_before_image_saved, on_image_saved,
    on_extra_noise, on_cfg_denoiser, on_cfg_denoised, on_cfg_after_cfg, on_before_component,
    on_after_component, on_image_grid, on_infotext_pasted, on_script_unloaded, on_before_ui,
    on_list_optimizers, on_list_unets, on_before_token_counter, remove_current_script_callbacks,
    remove_callbacks_for_function,
)
