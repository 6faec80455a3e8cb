"""PACS connectivity without Qt: configured nodes, DIMSE (C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE, a Storage SCP)
and DICOMweb (QIDO-RS, WADO-RS, STOW-RS), and retrieval into the local cache as cases.

Libraries: pynetdicom (DIMSE, DICOM PS3.7/PS3.8) and dicomweb-client (PS3.18). Every failure is a
:class:`medviewer.net.nodes.PacsError` whose message names the cause in words.
"""
