"""The machinery behind `python -m ppo_lessons.grade` (see that module and
docs/INSTRUCTORS.md).

- `cli`: the command line; `classroom`: grade a whole class; `judge`: judge one
  exercise from its records, and the instructor's hidden cases; `reports`: the CSV and
  Markdown reports; `export`: the solution notebooks with nbgrader metadata;
- `notebooks`: find the submitted notebooks and cut the exercises out of them;
- `records`: record a student's function as the check calls it (in the student's
  process) and replay those records to the untouched check (in the grader's process),
  with its parts `record_values` (plain data), `record_modules` (networks),
  `record_effects` (side effects on arguments) and `record_layout` (the records'
  layout checked);
- `child`: the program that runs one exercise of one student, in its own process;
- `sandbox`: start that program with limits on time, memory and output, and collect
  its records.
"""
