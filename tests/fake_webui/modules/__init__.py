"""A stand-in for Stable Diffusion WebUI's ``modules`` package, implementing only what
``scripts/talker_tab.py`` calls (see ../README.md)."""
