"""Placeholder: filled in by issue 4 work in progress."""

from fastapi import APIRouter

router = APIRouter()
