"""Durable storage shared by the Serve deployments and the bulk jobs, light enough for either (pyarrow,
no Ray): `files` (FileStore, one interface over local folders and object stores, atomic for readers) and
`jobs` (JobStore, the records of asynchronous analysis jobs). Import from the modules.
"""
