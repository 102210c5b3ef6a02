"""Lenses fitted by hublens for the bundled models: ``<model>/<kind>/lens.{safetensors,json}``.

Each lens.json records the command that made it, its corpus and the corpus's sha256, and the
held-out KL per layer; see README.md here.
"""
