"""What the tools share: saying which keys they wrote (squidpy's ``_save_data`` convention)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__package__)


def added(where: str) -> None:
    """Log (INFO, logger ``napari_causcell.tl``) a key a tool wrote into the user's data,
    e.g. ``added("obs['domain']")`` -> ``Added obs['domain']``."""
    logger.info("Added %s", where)
