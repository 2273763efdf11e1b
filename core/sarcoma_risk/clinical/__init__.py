"""Clinical data of soft tissue sarcoma, one module per job.

- :mod:`.variables`: the variables (type, unit, range or categories with the spellings charts use)
  and checking one record against them, every problem at once;
- :mod:`.staging`: the FNCLCC grade from its components and the AJCC 8th stage group;
- :mod:`.csvimport`: reading and checking a clinical CSV, row by row;
- :mod:`.encoder`: clinical records as Cox model columns, saved as plain JSON.

Import from the module that holds a name. Importing this package loads none of them.
"""
