"""Moving the aliases and keeping their trail: the evaluate step's decisions recorded on
each version (``alias_decision``, ``alias_rule``), a hand promotion with who, when and why,
and the lock that serialises "read the champion, compare, move the alias".

Versions are taken from what ``log_model`` returns, never from "the newest
version" in the registry, so two training runs racing cannot swap each other's
models; reading the champion, scoring it and moving the alias happen under one
file lock per model name (:func:`alias_lock`), so two runs on one host cannot
both become champion from the same stale comparison.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from clv.config import Settings, load_settings, private_dir
from clv.models.registry.policy import AliasDecision, selection_rule
from clv.models.registry.store import CHALLENGER, CHAMPION, configure_mlflow

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

log = logging.getLogger(__name__)


def apply_aliases(client: MlflowClient, name: str, decisions: list[AliasDecision]) -> None:
    """Record each decision and the rule on its version, then move the aliases.

    ``challenger`` is removed when no version earned it: every version that held an
    alias was among the decided ones, so the old holder was judged and lost it.
    """
    rule = json.dumps(selection_rule(name), sort_keys=True)
    for d in decisions:
        client.set_model_version_tag(name, d.version, "alias_decision", d.reason)
        client.set_model_version_tag(name, d.version, "alias_rule", rule)
        log.info("%s v%s -> %s: %s", name, d.version, d.alias, d.reason)
    for alias in (CHAMPION, CHALLENGER):
        holder = next((d.version for d in decisions if d.alias == alias), None)
        if holder is not None:
            client.set_registered_model_alias(name, alias, holder)
        elif alias == CHALLENGER and decisions:
            _delete_alias(client, name, alias)


def _delete_alias(client: MlflowClient, name: str, alias: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model_alias(name, alias)
    except MlflowException:  # nobody held it
        pass


@contextmanager
def alias_lock(name: str, settings: Settings | None = None) -> Iterator[None]:
    """Serialise "read the champion, compare, move the alias" for one model name.

    A file lock under the state folder: it covers every run on this host (the
    embedded SQLite registry is local too). With a remote tracking server, runs on
    different hosts are not serialised by it.
    """
    from clv.data.warehouse import exclusive_lock

    folder = private_dir((settings or load_settings()).state_dir / "mlflow")
    with exclusive_lock(folder / f"{name}.alias.lock"):
        yield


def promote(name: str, version: str, alias: str = CHAMPION,
            settings: Settings | None = None, reason: str | None = None,
            by: str | None = None, when: dt.datetime | None = None) -> dict[str, str]:
    """Move ``alias`` to ``version`` by hand (what an ML lead does), and record it.

    The version's ``alias_decision`` tag (the evaluate step's reason) is left as it
    was; the hand move is recorded beside it: ``alias_set_by`` (``by``, default the OS
    user), ``alias_set_at`` (UTC), ``alias_set_reason`` and ``alias_set`` (the alias).

    Returns:
        The tags written.
    """
    import getpass

    import mlflow

    configure_mlflow(settings)
    client = mlflow.MlflowClient()
    client.get_model_version(name, version)  # raises a clear error if it does not exist
    client.set_registered_model_alias(name, alias, version)
    moment = when or dt.datetime.now(dt.UTC)  # an operator's act, not pipeline logic
    tags = {"alias_set": alias, "alias_set_by": by or getpass.getuser(),
            "alias_set_at": moment.isoformat(timespec="seconds"),
            "alias_set_reason": reason or "(no reason given)"}
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    log.info("%s v%s -> %s by hand: %s", name, version, alias, tags)
    return tags
