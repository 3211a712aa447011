"""What the tests of several wing folders share, imported as `from support import ...`
(`tests/` is on sys.path: pyproject's pytest `pythonpath`): `independent_functions`
(every trainer exercise written without the package), `probe_envs`, `histories` (two
runs' metric histories compared), `replay` (the
grader's record and replay of a check), `browser` (a throwaway JupyterLab and browser
steps)."""
