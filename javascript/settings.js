/* Settings tab: the section list and the search box, all in the browser (modules/ui_settings.py).
 *
 * Which sections and settings show is decided by one <style> element of "display: none" rules by id, so
 * nothing Gradio renders is touched (Gradio may re-render its own elements' attributes at any time). */
(function () {
    "use strict";
    if (window.sdSettings) {
        return;
    }
    var STYLE_ID = "sd-settings-dynamic-style";
    var ALL = "__all__";

    function styleElement() {
        var el = document.getElementById(STYLE_ID);
        if (!el) {
            el = document.createElement("style");
            el.id = STYLE_ID;
            document.head.appendChild(el);
        }
        return el;
    }

    function hideRule(ids) {
        if (!ids.length) {
            return "";
        }
        return ids.map(function (id) {
            return "#" + CSS.escape(id);
        }).join(",\n") + " { display: none !important; }\n";
    }

    function matches(query, pair) {
        return pair[1].toLowerCase().indexOf(query) >= 0 || pair[0].toLowerCase().indexOf(query) >= 0;
    }

    function mount(element, cfg) {
        var sections = cfg.sections || [];
        var state = {current: sections.length ? sections[0].id : ALL, query: ""};
        var buttons = {};

        element.textContent = "";
        var root = document.createElement("div");
        root.className = "sd-settings-nav";
        var search = document.createElement("input");
        search.type = "search";
        search.id = "settings_search";
        search.placeholder = "Search settings…";
        search.setAttribute("aria-label", "Search settings");
        var count = document.createElement("div");
        count.className = "sd-settings-count";
        var list = document.createElement("ul");

        function addButton(id, label) {
            var li = document.createElement("li");
            var b = document.createElement("button");
            b.type = "button";
            b.textContent = label;
            b.dataset.section = id;
            b.addEventListener("click", function () {
                state.current = id;
                state.query = "";
                search.value = "";
                render();
            });
            li.appendChild(b);
            list.appendChild(li);
            buttons[id] = b;
        }

        function render() {
            var hidden = [];
            var shown = 0;
            sections.forEach(function (s) {
                if (state.query) {
                    var any = false;
                    s.keys.forEach(function (pair) {
                        if (matches(state.query, pair)) {
                            any = true;
                            shown += 1;
                        } else {
                            hidden.push("setting_" + pair[0], "refresh_" + pair[0]);
                        }
                    });
                    if (!any) {
                        hidden.push(s.id);
                    }
                } else if (state.current !== ALL && s.id !== state.current) {
                    hidden.push(s.id);
                }
            });
            styleElement().textContent = hideRule(hidden);
            Object.keys(buttons).forEach(function (id) {
                buttons[id].classList.toggle("sd-active", !state.query && id === state.current);
            });
            count.textContent = state.query ? shown + (shown === 1 ? " setting matches" : " settings match") : "";
        }

        sections.forEach(function (s) {
            addButton(s.id, s.label);
        });
        addButton(ALL, "Show all pages");
        search.addEventListener("input", function () {
            state.query = search.value.trim().toLowerCase();
            render();
        });
        root.appendChild(search);
        root.appendChild(count);
        root.appendChild(list);
        element.appendChild(root);
        render();
    }

    window.sdSettings = {mount: mount};
}());
