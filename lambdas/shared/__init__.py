"""Helpers the Lambdas share: database access from the RDS-managed secret, JSON logs, EMF metrics.

Only the standard library is imported at module load; pg8000, boto3 and Powertools are imported inside
the functions that need them, to keep cold starts close to a bare ``import boto3``.
"""
