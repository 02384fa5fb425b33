"""Helpers shared by the dashboard's pages: session state, cached loaders, widget groups, charts.

Nothing here calls TensorFlow or Keras directly; the engine in core/ does that.
"""
