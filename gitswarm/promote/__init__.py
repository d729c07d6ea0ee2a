"""promote"""
