/* Extra Networks card browser (spec §5.2), client side.
 *
 * modules/ui_extra_networks.py puts one gr.HTML per page (Textual Inversion, Hypernetworks, Checkpoints,
 * Lora) in a tab; its js_on_load calls window.sdExtraNetworks.mount(element, config). Each page fetches its
 * cards once as JSON (GET /sd_extra_networks/cards?page=...) and does everything else here: search and sort
 * over precomputed lower-case strings, folder filter, card/list view, and rendering in chunks of CHUNK cards
 * as the list scrolls (so 5,000 adapters never means 5,000 DOM nodes). Clicking a card edits the prompt
 * textarea and fires "input" so Gradio sees the change; clicking it again takes the text out.
 */
(function () {
    "use strict";
    if (window.sdExtraNetworks) {
        return;
    }

    var CHUNK = 120;
    var SORTS = [["default", "Default"], ["name", "Name"], ["date", "Date"], ["size", "Size"], ["path", "Path"]];
    var ORDER_FIELD = {"Path": "default", "Name": "name", "Date Created": "date", "Date Modified": "date"};
    var pages = [];  // mounted Page objects
    var lastFocused = {};  // positive prompt elem id -> the textarea of its group edited last

    document.addEventListener("focusin", function (ev) {
        var ta = ev.target;
        if (!(ta instanceof HTMLTextAreaElement)) {
            return;
        }
        pages.forEach(function (page) {
            var pos = document.getElementById(page.cfg.prompt);
            var neg = document.getElementById(page.cfg.negPrompt);
            if ((pos && pos.contains(ta)) || (neg && neg.contains(ta))) {
                lastFocused[page.cfg.prompt] = ta;
            }
        });
    }, true);

    // --- small helpers ------------------------------------------------------------------------------

    function el(tag, cls, text) {
        var node = document.createElement(tag);
        if (cls) {
            node.className = cls;
        }
        if (text !== undefined && text !== null) {
            node.textContent = text;
        }
        return node;
    }

    function escapeRegExp(s) {
        return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    }

    function api(base, path, opts) {
        opts = opts || {};
        var init = {method: opts.method || "GET", headers: {}};
        if (opts.body !== undefined) {
            init.headers["Content-Type"] = "application/json";
            init.body = JSON.stringify(opts.body);
        }
        return fetch(base + path, init).then(function (resp) {
            return resp.text().then(function (text) {
                var data = null;
                try {
                    data = text ? JSON.parse(text) : null;
                } catch (e) {
                    data = null;
                }
                if (!resp.ok) {
                    var msg = data && data.error ? data.error : (resp.status + " " + resp.statusText);
                    throw new Error(msg);
                }
                return data;
            });
        });
    }

    function humanSize(n) {
        var units = ["B", "KB", "MB", "GB", "TB"];
        var i = 0;
        while (n >= 1024 && i < units.length - 1) {
            n /= 1024;
            i++;
        }
        return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
    }

    function formatDate(seconds) {
        if (!seconds) {
            return "";
        }
        var d = new Date(seconds * 1000);
        function two(x) {
            return (x < 10 ? "0" : "") + x;
        }
        return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " +
            two(d.getHours()) + ":" + two(d.getMinutes());
    }

    function isHiddenPath(path) {
        return path.split("/").some(function (part) {
            return part.charAt(0) === ".";
        });
    }

    function promptTextarea(elemId) {
        var host = document.getElementById(elemId);
        if (!host) {
            return null;
        }
        return host.tagName === "TEXTAREA" ? host : host.querySelector("textarea");
    }

    // --- prompt editing --------------------------------------------------------------------------------

    /* Text with `text` taken out, or unchanged when it is not there.
     * A tag card (lora/hypernet) matches <KIND:NAME...> whatever its multiplier, under any of the card's names,
     * with the activation text that was inserted after it; anything else matches as a whole word. */
    function removeFromPrompt(value, text, tag, sep) {
        var sepPart = sep ? "(?:" + escapeRegExp(sep) + ")?" : "";
        var re;
        if (tag) {
            var tail = text.slice(text.indexOf(">") + 1);
            re = new RegExp(sepPart + "<(?:" + tag.kinds.map(escapeRegExp).join("|") + "):(?:" +
                tag.names.map(escapeRegExp).join("|") + ")(?::[^>]*)?>" +
                (tail ? "(?:" + escapeRegExp(tail) + ")?" : ""), "g");
        } else {
            re = new RegExp(sepPart + "(?<![^\\s,(\\[{|])" + escapeRegExp(text) + "(?![^\\s,)\\]}|:])", "g");
        }
        var out = value.replace(re, "");
        if (out !== value && sep && out.indexOf(sep) === 0 && value.indexOf(sep) !== 0) {
            out = out.slice(sep.length);  // the first item went: do not leave its separator in front
        }
        return out;
    }

    function addToPrompt(value, text, sep) {
        if (!value) {
            return text;
        }
        if (sep && value.slice(-sep.length) === sep) {
            return value + text;
        }
        return value + sep + text;
    }

    function togglePromptText(textarea, text, tag, sep) {
        var before = textarea.value;
        var after = removeFromPrompt(before, text, tag, sep);
        var added = after === before;
        if (added) {
            after = addToPrompt(before, text, sep);
        }
        textarea.value = after;
        textarea.dispatchEvent(new Event("input", {bubbles: true}));
        return added;
    }

    // --- one page ---------------------------------------------------------------------------------

    function Page(root, cfg) {
        this.root = root;
        this.cfg = cfg;
        this.api = cfg.api || "/sd_extra_networks";
        this.cards = [];
        this.byId = new Map();
        this.view = [];
        this.shown = 0;
        this.query = "";
        this.folder = "";
        this.sortKey = null;
        this.descending = false;
        this.storeKey = "sd-en:" + cfg.tabname + ":" + cfg.page + ":";
        this.layout = localStorage.getItem(this.storeKey + "layout") || "cards";
        this.data = null;
        this.pending = 0;
        this.build();
        this.load();
    }

    Page.prototype.build = function () {
        var self = this;
        var root = this.root;
        root.textContent = "";
        root.classList.add("sd-en");
        root.dataset.page = this.cfg.page;
        root.dataset.tabname = this.cfg.tabname;

        var bar = el("div", "sd-en-toolbar");
        this.search = el("input", "sd-en-search");
        this.search.type = "search";
        this.search.placeholder = "Search " + this.cfg.title + "…";
        this.search.id = this.cfg.tabname + "_" + this.cfg.page + "_extra_search";
        this.search.addEventListener("input", function () {
            self.query = self.search.value;
            self.schedule();
        });
        this.sortSelect = el("select", "sd-en-sort");
        this.sortSelect.title = "Sort by";
        SORTS.forEach(function (s) {
            var opt = el("option", "", s[1]);
            opt.value = s[0];
            self.sortSelect.appendChild(opt);
        });
        this.sortSelect.addEventListener("change", function () {
            self.sortKey = self.sortSelect.value;
            self.apply();
        });
        this.orderButton = el("button", "sd-en-button sd-en-order");
        this.orderButton.type = "button";
        this.orderButton.addEventListener("click", function () {
            self.descending = !self.descending;
            self.apply();
        });
        this.layoutButton = el("button", "sd-en-button sd-en-layout");
        this.layoutButton.type = "button";
        this.layoutButton.addEventListener("click", function () {
            self.layout = self.layout === "cards" ? "list" : "cards";
            localStorage.setItem(self.storeKey + "layout", self.layout);
            self.apply();
        });
        this.dirsButton = el("button", "sd-en-button sd-en-dirs-toggle", "Dirs");
        this.dirsButton.type = "button";
        this.dirsButton.title = "Show or hide the folders";
        this.dirsButton.addEventListener("click", function () {
            self.root.classList.toggle("sd-en-dirs-off");
        });
        this.refreshButton = el("button", "sd-en-button sd-en-refresh", "↻");
        this.refreshButton.type = "button";
        this.refreshButton.title = "Refresh: list the folders again";
        this.refreshButton.addEventListener("click", function () {
            self.refreshAll();
        });
        this.count = el("span", "sd-en-count");
        [this.search, this.sortSelect, this.orderButton, this.layoutButton, this.dirsButton,
            this.refreshButton, this.count].forEach(function (n) {
            bar.appendChild(n);
        });
        root.appendChild(bar);

        this.status = el("div", "sd-en-status");
        root.appendChild(this.status);

        var main = el("div", "sd-en-main");
        this.dirs = el("div", "sd-en-dirpane");
        this.dirs.addEventListener("click", function (ev) {
            var node = ev.target.closest("[data-dir]");
            if (!node) {
                return;
            }
            if (ev.target.closest(".sd-en-twisty")) {
                node.parentNode.classList.toggle("sd-en-collapsed");
                return;
            }
            var dir = node.getAttribute("data-dir");
            self.folder = self.folder === dir ? "" : dir;
            self.apply();
        });
        this.scroller = el("div", "sd-en-scroller");
        this.list = el("div", "sd-en-cards");
        this.list.addEventListener("click", function (ev) {
            self.onCardClick(ev);
        });
        this.sentinel = el("div", "sd-en-sentinel");
        this.empty = el("div", "sd-en-empty");
        this.scroller.appendChild(this.list);
        this.scroller.appendChild(this.empty);
        this.scroller.appendChild(this.sentinel);
        main.appendChild(this.dirs);
        main.appendChild(this.scroller);
        root.appendChild(main);

        this.skipped = el("div", "sd-en-skipped");
        root.appendChild(this.skipped);

        this.observer = new IntersectionObserver(function (entries) {
            if (entries.some(function (e) {
                return e.isIntersecting;
            })) {
                self.renderMore();
            }
        }, {root: this.scroller, rootMargin: "400px"});
        this.observer.observe(this.sentinel);
    };

    Page.prototype.setStatus = function (text, isError) {
        this.status.textContent = text || "";
        this.status.classList.toggle("sd-en-error", !!isError);
    };

    Page.prototype.load = function () {
        var self = this;
        var serial = ++this.pending;
        this.root.classList.add("sd-en-loading");
        return api(this.api, "/cards?page=" + encodeURIComponent(this.cfg.page)).then(function (data) {
            if (serial !== self.pending) {
                return;
            }
            var first = self.data === null;
            self.data = data;
            self.opts = data.options || {};
            if (first) {
                var o = self.opts;
                self.sortKey = ORDER_FIELD[o.extra_networks_card_order_field] || "default";
                self.descending = o.extra_networks_card_order === "Descending";
                if (o.extra_networks_tree_view_default_enabled === false) {
                    self.root.classList.add("sd-en-dirs-off");
                }
                self.applyLook();
            }
            self.setCards(data.cards);
            self.renderDirs();
            self.renderSkipped();
            self.root.classList.remove("sd-en-loading");
            self.apply();
        }).catch(function (e) {
            self.root.classList.remove("sd-en-loading");
            self.setStatus("Could not load " + self.cfg.title + ": " + e.message, true);
        });
    };

    Page.prototype.applyLook = function () {
        var o = this.opts;
        var style = this.root.style;
        if (o.extra_networks_card_width) {
            style.setProperty("--sd-en-card-w", o.extra_networks_card_width + "px");
        }
        if (o.extra_networks_card_height) {
            style.setProperty("--sd-en-card-h", o.extra_networks_card_height + "px");
        }
        if (o.extra_networks_card_text_scale !== undefined && o.extra_networks_card_text_scale !== null) {
            style.setProperty("--sd-en-text-scale", String(o.extra_networks_card_text_scale));
        }
        if (o.extra_networks_tree_view_default_width) {
            style.setProperty("--sd-en-dirs-w", o.extra_networks_tree_view_default_width + "px");
        }
        this.root.classList.toggle("sd-en-tree", o.extra_networks_tree_view_style === "Tree");
        this.root.classList.toggle("sd-en-nodesc", o.extra_networks_card_show_desc === false);
    };

    Page.prototype.setCards = function (cards) {
        this.cards = cards;
        this.byId = new Map();
        for (var i = 0; i < cards.length; i++) {
            this.byId.set(cards[i].id, cards[i]);
        }
    };

    Page.prototype.schedule = function () {
        var self = this;
        if (this.scheduled) {
            return;
        }
        this.scheduled = true;
        requestAnimationFrame(function () {
            self.scheduled = false;
            self.apply();
        });
    };

    Page.prototype.familyHidden = function (card) {
        var o = this.opts;
        var family = this.data && this.data.model_family;
        if (this.cfg.page !== "lora" || o.lora_show_all || !family) {
            return false;
        }
        if (card.family === "Unknown") {
            return (o.lora_hide_unknown_for_versions || []).indexOf(family) >= 0;
        }
        return card.family !== family;
    };

    /* Filter and sort this.cards into this.view, then render the first chunk. */
    Page.prototype.apply = function () {
        if (!this.data) {
            return;
        }
        var q = this.query.trim().toLowerCase();
        var folder = this.folder;
        var prefix = folder + "/";
        var mode = this.opts.extra_networks_hidden_models || "When searched";
        var searched = q.length >= 4 || (folder !== "" && isHiddenPath(folder));
        var showHidden = mode === "Always" || (mode === "When searched" && searched);
        var out = [];
        for (var i = 0; i < this.cards.length; i++) {
            var c = this.cards[i];
            if (folder && c.dir !== folder && c.dir.lastIndexOf(prefix, 0) !== 0) {
                continue;
            }
            if (q && c.search.indexOf(q) < 0) {
                continue;
            }
            if (c.hidden && !showHidden) {
                continue;
            }
            if (this.familyHidden(c)) {
                continue;
            }
            out.push(c);
        }
        var key = this.sortKey || "default";
        var dir = this.descending ? -1 : 1;
        out.sort(function (a, b) {
            var x = a.sort[key];
            var y = b.sort[key];
            if (x < y) {
                return -dir;
            }
            if (x > y) {
                return dir;
            }
            return a.sort["default"] - b.sort["default"];
        });
        this.view = out;
        this.sortSelect.value = key;
        this.orderButton.textContent = this.descending ? "↓" : "↑";
        this.orderButton.title = this.descending ? "Descending (click for ascending)" : "Ascending (click for descending)";
        this.layoutButton.textContent = this.layout === "cards" ? "☰" : "▦";
        this.layoutButton.title = this.layout === "cards" ? "Show as a list" : "Show as cards";
        this.root.classList.toggle("sd-en-listview", this.layout === "list");
        this.count.textContent = out.length === this.cards.length ? out.length + " items" :
            out.length + " of " + this.cards.length;
        this.markDirs();
        this.list.textContent = "";
        this.shown = 0;
        this.empty.textContent = out.length ? "" : (this.cards.length ? "Nothing matches." :
            "No " + this.cfg.title + " found. Put files in the models folder and press ↻.");
        this.renderMore();
    };

    Page.prototype.renderMore = function () {
        if (this.shown >= this.view.length) {
            return;
        }
        var end = Math.min(this.view.length, this.shown + CHUNK);
        var frag = document.createDocumentFragment();
        var list = this.layout === "list";
        for (var i = this.shown; i < end; i++) {
            frag.appendChild(list ? this.rowElement(this.view[i]) : this.cardElement(this.view[i]));
        }
        this.list.appendChild(frag);
        this.shown = end;
        // A tall viewport may show the sentinel again at once: the observer fires only on changes.
        var self = this;
        requestAnimationFrame(function () {
            var s = self.sentinel.getBoundingClientRect();
            var r = self.scroller.getBoundingClientRect();
            if (s.top < r.bottom + 400 && self.shown < self.view.length && self.scroller.offsetParent !== null) {
                self.renderMore();
            }
        });
    };

    Page.prototype.fields = function () {
        return (this.data && this.data.fields) || [];
    };

    Page.prototype.editButton = function () {
        var b = el("button", "sd-en-edit", "✎");
        b.type = "button";
        b.title = "Edit metadata";
        return b;
    };

    Page.prototype.cardElement = function (c) {
        var node = el("div", "sd-en-card");
        node.dataset.id = c.id;
        node.title = c.relpath + (c.description ? "\n" + c.description : "");
        if (c.preview) {
            var img = el("img", "sd-en-preview");
            img.loading = "lazy";
            img.decoding = "async";
            img.alt = "";
            img.src = c.preview;
            node.appendChild(img);
        } else {
            node.appendChild(el("div", "sd-en-nopreview", c.name.slice(0, 2).toUpperCase()));
        }
        if (this.data && this.data.current && c.title === this.data.current) {
            node.classList.add("sd-en-selected");
        }
        if (this.fields().length) {
            node.appendChild(this.editButton());
        }
        if (c.family && c.family !== "Unknown") {
            node.appendChild(el("span", "sd-en-family", c.family));
        }
        var info = el("div", "sd-en-info");
        info.appendChild(el("div", "sd-en-name", c.name));
        if (c.description) {
            var desc = el("div", "sd-en-desc");
            if (this.opts.extra_networks_card_description_is_html) {
                desc.innerHTML = c.description;  // the user's own option (A1111 "Treat card description as HTML")
            } else {
                desc.textContent = c.description;
            }
            info.appendChild(desc);
        }
        node.appendChild(info);
        return node;
    };

    Page.prototype.rowElement = function (c) {
        var node = el("div", "sd-en-row");
        node.dataset.id = c.id;
        node.title = c.description || c.relpath;
        if (this.data && this.data.current && c.title === this.data.current) {
            node.classList.add("sd-en-selected");
        }
        node.appendChild(el("span", "sd-en-name", c.name));
        node.appendChild(el("span", "sd-en-family", c.family));
        node.appendChild(el("span", "sd-en-path", c.relpath));
        node.appendChild(el("span", "sd-en-size", humanSize(c.size)));
        node.appendChild(el("span", "sd-en-date", formatDate(c.mtime)));
        if (this.fields().length) {
            node.appendChild(this.editButton());
        } else {
            node.appendChild(el("span", ""));
        }
        return node;
    };

    Page.prototype.onCardClick = function (ev) {
        var node = ev.target.closest("[data-id]");
        if (!node) {
            return;
        }
        var card = this.byId.get(node.dataset.id);
        if (!card) {
            return;
        }
        if (ev.target.closest(".sd-en-edit")) {
            ev.stopPropagation();
            this.openEditor(card);
            return;
        }
        if (card.action === "checkpoint") {
            this.switchCheckpoint(card);
        } else {
            this.insert(card);
        }
    };

    Page.prototype.insert = function (card) {
        var cfg = this.cfg;
        var sep = this.opts.extra_networks_add_text_separator;
        sep = typeof sep === "string" ? sep : " ";
        var target = promptTextarea(cfg.prompt);
        if (card.allow_negative) {
            var last = lastFocused[cfg.prompt];
            if (last && last.isConnected) {
                target = last;
            }
        }
        if (!target) {
            this.setStatus("No prompt textbox #" + cfg.prompt + " on this page.", true);
            return;
        }
        var added = togglePromptText(target, card.prompt, card.tag, sep);
        var neg = card.negative ? promptTextarea(cfg.negPrompt) : null;
        if (neg) {
            var negHas = removeFromPrompt(neg.value, card.negative, null, sep) !== neg.value;
            if (negHas !== added) {  // keep the negative text in step with the card's tag
                togglePromptText(neg, card.negative, null, sep);
            }
        }
        this.setStatus("");
    };

    Page.prototype.switchCheckpoint = function (card) {
        var self = this;
        this.setStatus("Loading checkpoint " + card.title + "…");
        api(this.api, "/checkpoint", {method: "POST", body: {title: card.title}}).then(function () {
            return self.pollCheckpoint();
        }).catch(function (e) {
            self.setStatus("Checkpoint " + card.title + ": " + e.message, true);
        });
    };

    Page.prototype.pollCheckpoint = function () {
        var self = this;
        return new Promise(function (resolve) {
            setTimeout(resolve, 400);
        }).then(function () {
            return api(self.api, "/checkpoint-status");
        }).then(function (s) {
            if (s.state === "loading") {
                return self.pollCheckpoint();
            }
            if (s.state === "error") {
                self.setStatus("Could not load " + s.title + ": " + s.error, true);
                return null;
            }
            self.setStatus("Checkpoint loaded: " + s.title);
            document.dispatchEvent(new CustomEvent("sd-extra-networks:checkpoint", {detail: {title: s.title}}));
            pages.forEach(function (p) {
                if (p.root.isConnected) {
                    p.load();  // the Lora page shows what fits the new model; cards show the selected checkpoint
                }
            });
            return null;
        });
    };

    Page.prototype.refreshAll = function () {
        var self = this;
        this.setStatus("Refreshing…");
        api(this.api, "/refresh", {method: "POST", body: {}}).then(function () {
            return Promise.all(pages.filter(function (p) {
                return p.root.isConnected;
            }).map(function (p) {
                return p.load();
            }));
        }).then(function () {
            self.setStatus("Refreshed: " + self.cards.length + " " + self.cfg.title + " items.");
        }).catch(function (e) {
            self.setStatus("Refresh failed: " + e.message, true);
        });
    };

    // --- folders ---------------------------------------------------------------------------------

    Page.prototype.renderDirs = function () {
        var showHidden = this.opts.extra_networks_show_hidden_directories !== false;
        var dirs = new Set();
        this.cards.forEach(function (c) {
            var parts = c.dir ? c.dir.split("/") : [];
            for (var i = 1; i <= parts.length; i++) {
                dirs.add(parts.slice(0, i).join("/"));
            }
        });
        var list = Array.from(dirs).filter(function (d) {
            return showHidden || !isHiddenPath(d);
        }).sort(function (a, b) {
            return a.localeCompare(b, undefined, {numeric: true, sensitivity: "base"});
        });
        if (this.folder && list.indexOf(this.folder) < 0) {
            this.folder = "";
        }
        this.dirs.textContent = "";
        this.root.classList.toggle("sd-en-nodirs", list.length === 0);
        if (this.opts.extra_networks_tree_view_style === "Tree") {
            this.dirs.appendChild(this.treeNode("", list, 0));
        } else {
            var self = this;
            list.forEach(function (d) {
                var b = el("button", "sd-en-dir", self.opts.extra_networks_dir_button_function ? "/" + d : d);
                b.type = "button";
                b.setAttribute("data-dir", d);
                self.dirs.appendChild(b);
            });
        }
        this.markDirs();
    };

    Page.prototype.treeNode = function (parent, all, depth) {
        var ul = el("ul", "sd-en-treelist");
        var prefix = parent ? parent + "/" : "";
        var self = this;
        all.forEach(function (d) {
            if (d.lastIndexOf(prefix, 0) !== 0 || d === parent || d.slice(prefix.length).indexOf("/") >= 0) {
                return;
            }
            var li = el("li", "sd-en-treeitem");
            var row = el("div", "sd-en-dir sd-en-treerow");
            row.setAttribute("data-dir", d);
            row.style.paddingLeft = (depth * 0.9 + 0.2) + "em";
            var hasChildren = all.some(function (x) {
                return x.lastIndexOf(d + "/", 0) === 0;
            });
            row.appendChild(el("span", "sd-en-twisty", hasChildren ? "▾" : ""));
            row.appendChild(el("span", "sd-en-dirname", d.slice(prefix.length)));
            li.appendChild(row);
            if (hasChildren) {
                li.appendChild(self.treeNode(d, all, depth + 1));
            }
            ul.appendChild(li);
        });
        return ul;
    };

    Page.prototype.markDirs = function () {
        var folder = this.folder;
        this.dirs.querySelectorAll("[data-dir]").forEach(function (n) {
            n.classList.toggle("sd-en-active", n.getAttribute("data-dir") === folder);
        });
    };

    Page.prototype.renderSkipped = function () {
        var skipped = (this.data && this.data.skipped) || [];
        this.skipped.textContent = "";
        if (!skipped.length) {
            return;
        }
        var box = el("details", "sd-en-skipped-box");
        box.open = true;
        box.appendChild(el("summary", "", skipped.length + " embedding" + (skipped.length === 1 ? "" : "s") +
            " not usable with the loaded model"));
        var ul = el("ul");
        skipped.forEach(function (s) {
            var li = el("li", "sd-en-skipped-item");
            li.appendChild(el("b", "sd-en-skipped-name", s.name));
            li.appendChild(document.createTextNode(": " + s.reason));
            if (s.filename) {
                li.appendChild(el("span", "sd-en-path", " " + s.filename));
            }
            ul.appendChild(li);
        });
        box.appendChild(ul);
        this.skipped.appendChild(box);
    };

    // --- edit dialog ---------------------------------------------------------------------------------

    var FIELD_LABELS = {
        "description": "Description", "notes": "Notes", "sd version": "Stable Diffusion version",
        "activation text": "Activation text", "negative text": "Negative prompt",
        "preferred weight": "Preferred weight (0 = use the default multiplier)",
    };

    Page.prototype.openEditor = function (card) {
        var self = this;
        var dlg = el("dialog", "sd-en-dialog");
        dlg.id = this.cfg.tabname + "_" + this.cfg.page + "_edit_dialog";
        var form = el("form", "sd-en-form");
        form.method = "dialog";
        form.noValidate = true;  // the server checks the fields and names the bad one
        form.appendChild(el("h3", "sd-en-dialog-title", card.name));
        var facts = el("table", "sd-en-facts");
        [["File", card.relpath], ["Size", humanSize(card.size)], ["Modified", formatDate(card.mtime)],
            ["Hash", card.hash || "not computed yet"], ["Base model", card.family]].forEach(function (row) {
            var tr = el("tr");
            tr.appendChild(el("th", "", row[0]));
            tr.appendChild(el("td", "", row[1]));
            facts.appendChild(tr);
        });
        form.appendChild(facts);
        var inputs = {};
        this.fields().forEach(function (field) {
            var label = el("label", "sd-en-field");
            label.appendChild(el("span", "sd-en-field-label", FIELD_LABELS[field] || field));
            var input;
            if (field === "description" || field === "notes") {
                input = el("textarea");
                input.rows = field === "notes" ? 4 : 3;
            } else if (field === "sd version") {
                input = el("select");
                ["SD1", "SD2", "SDXL", "Unknown"].forEach(function (v) {
                    var o = el("option", "", v);
                    o.value = v;
                    input.appendChild(o);
                });
            } else if (field === "preferred weight") {
                input = el("input");
                input.type = "number";
                input.min = "0";
                input.max = "2";
                input.step = "0.01";
            } else {
                input = el("input");
                input.type = "text";
            }
            input.name = field;
            input.className = "sd-en-input";
            input.setAttribute("data-field", field);
            label.appendChild(input);
            form.appendChild(label);
            inputs[field] = input;
        });
        var error = el("div", "sd-en-dialog-error");
        form.appendChild(error);
        var buttons = el("div", "sd-en-dialog-buttons");
        var cancel = el("button", "sd-en-button sd-en-cancel", "Cancel");
        cancel.type = "button";
        cancel.addEventListener("click", function () {
            dlg.close();
        });
        var save = el("button", "sd-en-button sd-en-save", "Save");
        save.type = "submit";
        // A1111's "Replace preview": the picture selected in this tab's gallery becomes the card's preview.
        var replace = el("button", "sd-en-button sd-en-replace-preview", "Replace preview");
        replace.type = "button";
        replace.addEventListener("click", function () {
            var src = selectedGalleryImage(self.cfg.tabname);
            if (!src) {
                error.textContent = "Select a picture in the " + self.cfg.tabname + " gallery first.";
                return;
            }
            replace.disabled = true;
            error.textContent = "";
            fetch(src).then(function (r) {
                return r.blob();
            }).then(function (blob) {
                return new Promise(function (resolve, reject) {
                    var reader = new FileReader();
                    reader.onload = function () { resolve(reader.result); };
                    reader.onerror = function () { reject(new Error("cannot read the picture")); };
                    reader.readAsDataURL(blob);
                });
            }).then(function (dataUrl) {
                return api(self.api, "/replace-preview", {method: "POST",
                    body: {page: self.cfg.page, id: card.id, image: dataUrl}});
            }).then(function (resp) {
                self.replaceCard(resp.card);
                self.setStatus("Replaced the preview of " + card.name + ".");
                dlg.close();
            }).catch(function (e) {
                error.textContent = e.message;
                replace.disabled = false;
            });
        });
        buttons.appendChild(replace);
        buttons.appendChild(cancel);
        buttons.appendChild(save);
        form.appendChild(buttons);
        dlg.appendChild(form);
        dlg.addEventListener("close", function () {
            dlg.remove();
        });
        document.body.appendChild(dlg);
        save.disabled = true;
        dlg.showModal();

        api(this.api, "/user-metadata?page=" + encodeURIComponent(this.cfg.page) + "&id=" +
            encodeURIComponent(card.id)).then(function (data) {
            var meta = data.user_metadata || {};
            Object.keys(inputs).forEach(function (f) {
                var v = meta[f];
                if (f === "sd version") {
                    inputs[f].value = v || card.family || "Unknown";
                } else if (f === "preferred weight") {
                    inputs[f].value = v === undefined || v === null ? "0" : String(v);
                } else {
                    inputs[f].value = typeof v === "string" ? v : "";
                }
            });
            save.disabled = false;
        }).catch(function (e) {
            error.textContent = e.message;
        });

        form.addEventListener("submit", function (ev) {
            ev.preventDefault();
            var data = {};
            Object.keys(inputs).forEach(function (f) {
                var v = inputs[f].value;
                if (f === "preferred weight") {
                    var n = v.trim() === "" ? 0 : Number(v);
                    v = isNaN(n) ? v : n;
                }
                data[f] = v;
            });
            save.disabled = true;
            error.textContent = "";
            api(self.api, "/save-user-metadata", {method: "POST", body: {page: self.cfg.page, id: card.id, data: data}})
                .then(function (resp) {
                    self.replaceCard(resp.card);
                    self.setStatus("Saved " + card.name + ".");
                    dlg.close();
                }).catch(function (e) {
                    error.textContent = e.message;
                    save.disabled = false;
                });
        });
    };

    // The gallery picture the user is looking at: the selected thumbnail, else the large preview, else the first.
    function selectedGalleryImage(tabname) {
        var gallery = document.getElementById(tabname + "_gallery");
        if (!gallery) {
            return null;
        }
        var img = gallery.querySelector(".thumbnail-item.selected img") || gallery.querySelector(".preview img") ||
            gallery.querySelector("img");
        return img ? img.src : null;
    }

    Page.prototype.replaceCard = function (card) {
        for (var i = 0; i < this.cards.length; i++) {
            if (this.cards[i].id === card.id) {
                this.cards[i] = card;
                break;
            }
        }
        this.byId.set(card.id, card);
        var top = this.scroller.scrollTop;
        var shown = this.shown;
        this.apply();
        while (this.shown < Math.min(shown, this.view.length)) {
            this.renderMore();
        }
        this.scroller.scrollTop = top;
    };

    // --- public ------------------------------------------------------------------------------------

    function mount(element, cfg) {
        if (element.__sdExtraNetworks) {
            return element.__sdExtraNetworks;
        }
        pages = pages.filter(function (p) {
            return p.root.isConnected;
        });
        var page = new Page(element, cfg);
        element.__sdExtraNetworks = page;
        pages.push(page);
        return page;
    }

    window.sdExtraNetworks = {
        mount: mount,
        pages: function () {
            return pages.slice();
        },
        removeFromPrompt: removeFromPrompt,
        addToPrompt: addToPrompt,
    };
})();
