"""`routelab endpoints add | list | remove`: named OpenAI-compatible endpoints (model ids NAME/MODEL).

The workspace keeps an endpoint's URL and the NAME of the variable holding its key, never a key.
"""

from __future__ import annotations

from routelab.cli.output import add_json_flag, emit_json, table
from routelab.domain import BadInput

FORMS = ("json_schema", "json_object_schema", "json_object", "prompt")
NO_FLAGS = {"batch": "no Batch API", "files": "no Files API", "fine_tuning": "no fine-tuning API",
            "logprobs": "no logprobs", "seed": "refuses seed", "n": "ignores n (several samples need several requests)"}


def register(sub, common) -> None:
    p = sub.add_parser("endpoints", parents=[common],
                       help="named OpenAI-compatible endpoints (vLLM, Ollama, llama.cpp, Azure...): model ids NAME/MODEL")
    esub = p.add_subparsers(dest="endpoints_command", metavar="SUBCOMMAND", required=True)
    q = esub.add_parser("add", parents=[common], help="add (or replace) an endpoint; then use NAME/MODEL as a model id",
                        description="The workspace stores the URL and the name of the variable with the key, "
                                    "never the key. What the endpoint supports is found on first use (or declared "
                                    "here) and shown by `routelab endpoints list`.")
    q.add_argument("name", help="letters, digits, '_', '-', '.' (a model id NAME/MODEL is split at the first '/')")
    q.add_argument("--base-url", required=True, metavar="URL",
                   help="e.g. http://127.0.0.1:8000/v1 (vLLM), http://127.0.0.1:11434/v1 (Ollama), "
                        "https://RESOURCE.openai.azure.com (Azure)")
    q.add_argument("--api-key-env", metavar="VAR",
                   help="the environment variable holding its key (default: none is sent; never OPENAI_API_KEY's)")
    q.add_argument("--kind", choices=["openai", "azure"], default="openai",
                   help="azure: Azure OpenAI (model ids NAME/DEPLOYMENT, the api-key header)")
    q.add_argument("--api-version", metavar="V", help="Azure's api-version (default 2024-10-21)")
    q.add_argument("--structured", choices=FORMS, metavar="FORM",
                   help=f"the response format to use, not probed ({', '.join(FORMS)})")
    for what, meaning in NO_FLAGS.items():
        q.add_argument(f"--no-{what.replace('_', '-')}", dest=f"no_{what}", action="store_true",
                       help=f"declare: {meaning}")
    q.set_defaults(func=cmd_add, creates_workspace=True)
    q = esub.add_parser("list", parents=[common], help="endpoints and what each supports (? = not known yet)")
    add_json_flag(q)
    q.set_defaults(func=cmd_list)
    q = esub.add_parser("remove", parents=[common], help="forget an endpoint (and what was found out about it)")
    q.add_argument("name")
    q.set_defaults(func=cmd_remove)


def cmd_add(ctx) -> int:
    import os

    from routelab.providers.openai.endpoints import new_endpoint

    a = ctx.args
    declared = {what: False for what in NO_FLAGS if getattr(a, f"no_{what}")}
    if a.structured:
        declared["structured"] = a.structured
    endpoint = new_endpoint(a.name, a.base_url, kind=a.kind, api_key_env=a.api_key_env, api_version=a.api_version,
                            declared=declared)  # checked before the workspace is touched
    store = ctx.store()
    replaced = store.endpoint(endpoint.name) is not None
    store.save_endpoint(endpoint)
    if endpoint.api_key_env:
        key = f"key from ${endpoint.api_key_env}" + ("" if os.environ.get(endpoint.api_key_env)
                                                    else " (not set in this shell)")
    else:
        key = "no key sent"
    print(f"{'replaced' if replaced else 'added'} endpoint {endpoint.name} ({endpoint.kind}): {endpoint.base_url}, "
          f"{key}; use model ids {endpoint.name}/{'DEPLOYMENT' if endpoint.kind == 'azure' else 'MODEL'}")
    return 0


def _cell(entry: dict | None) -> str:
    if entry is None or entry["value"] is None:
        return "?"
    value = entry["value"]
    text = "yes" if value is True else "no" if value is False else str(value)
    text = {"json_object_schema": "json_object+schema", "prompt": "plain prompt"}.get(text, text)
    return text + ("*" if entry["source"] == "declared" else "")


def cmd_list(ctx) -> int:
    from routelab.config import settings as load_settings
    from routelab.providers.openai.capabilities import endpoint_rows

    rows = endpoint_rows(ctx.store(), load_settings())
    if ctx.args.json:
        emit_json(rows)
        return 0
    shown = []
    for r in rows:
        c = r["capabilities"]
        key = f"${r['api_key_env']}" + ("" if r["key_set"] else " (unset)") if r["api_key_env"] else "none"
        url = r["base_url"] + (f" (api-version {r['api_version']})" if r["api_version"] else "")
        shown.append((r["name"], r["kind"], url, key, _cell(c.get("structured")), _cell(c.get("logprobs")),
                      _cell(c.get("confidence")), _cell(c.get("batch")), _cell(c.get("files")),
                      _cell(c.get("fine_tuning"))))
    table(shown, ["name", "kind", "url", "key", "format", "logprobs", "confidence", "batch", "files", "fine-tuning"])
    print("? not known yet (found on first use) · * declared at `endpoints add` · model ids: NAME/MODEL; "
          "ids without a known NAME/ go to the default endpoint")
    return 0


def cmd_remove(ctx) -> int:
    from routelab.providers.openai.endpoints import named_target

    store = ctx.store()
    endpoint = store.endpoint(ctx.args.name)
    if endpoint is None:
        names = ", ".join(e.name for e in store.endpoints()) or "none"
        raise BadInput(f"no endpoint {ctx.args.name!r} in this workspace (endpoints: {names})")
    key = named_target(endpoint).key
    shared = any(named_target(e).key == key for e in store.endpoints() if e.name != endpoint.name)
    store.remove_endpoint(endpoint.name, capabilities_key=None if shared else key)
    print(f"removed endpoint {endpoint.name}; model ids {endpoint.name}/... now go to the default endpoint")
    return 0


__all__ = ["register"]
