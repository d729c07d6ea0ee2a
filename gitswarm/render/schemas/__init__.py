"""The Docker CLI's Compose file JSON schemas (v3.0 to v3.13), vendored unchanged.

Source: https://github.com/docker/cli tag v28.2.2 (commit e6534b4e),
cli/compose/schema/data/. Copyright 2012-2017 Docker, Inc., licensed under the Apache
License 2.0. See NOTICE.md in this folder. Loaded by render/schema.py.
"""
