"""Runs before the launch flags are parsed: an extension adds its own flags here."""


def preload(parser):
    parser.add_argument("--example-note-default", type=str, default=None,
                        help="sd-webui-example: a note the Example note script starts with")
