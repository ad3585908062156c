"""MTL Playground's engine: suites, architectures, methods, the trainer, the run store and jobs.

Never imports streamlit: the app and the command line are two thin front ends over this package.
"""
