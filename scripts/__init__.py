"""The project's flows (Verilog generation, lint, synthesis, studies, benchmarks).

A package so that its modules import each other and its tests import them without any
``sys.path`` set-up: run them from the work tree as modules, ``python -m scripts.<name>``
(the Makefile does). hdl and golden are installed (editable).
"""
