"""Tests of deploy/: schemas, and agreement with the code."""
