"""Image models: model cards (``card``), safetensors weights (``weights``), the one frame path (``frames``),
preprocessing, the intended-use gate (``scope``), the networks (``model``), scoring (``scorer``) and attribution
maps (``attribution``). torch is imported only by ``model``, ``attribution`` and on first use in ``scorer``."""
