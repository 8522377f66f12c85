/* Quicksettings bar (modules/page/settings.py): when the extra networks browser switched the checkpoint, ask
 * Python for the bar's current values by clicking the hidden sync button. */
(function () {
    "use strict";
    if (window.sdQuicksettings) {
        return;
    }
    function sync() {
        var button = document.getElementById("quicksettings_sync");
        if (button) {
            button.click();
        }
    }
    document.addEventListener("sd-extra-networks:checkpoint", sync);
    window.sdQuicksettings = {sync: sync};
}());
