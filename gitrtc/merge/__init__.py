"""Whole-file three-way merges (`files.merge_file`), used when a commit must merge the
session's result with a branch that moved. It may use `gitrtc.documents`; the documents
never import this package (tests/test_architecture.py checks it).
"""
