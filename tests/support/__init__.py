"""What tests in several wing folders share (`tests/` is on sys.path: pyproject's pytest
`pythonpath`): `independent_functions` (every trainer
exercise written without the package), `probe_envs`, `replay` (the grader's record and
replay of a check), `browser` (a throwaway JupyterLab and browser steps)."""
