"""Offline report export of a case, headless (no Qt): content, de-identification, rendering, PDF, CSV.

* :mod:`medviewer.report.model` - :class:`~medviewer.report.model.Report`: the report as one typed model
  (dataclasses) that the PDF, the JSON (:meth:`~medviewer.report.model.Report.to_dict`, schema
  ``medviewer.report/1``) and the DICOM SR are all written from;
* :mod:`medviewer.report.content` - :func:`~medviewer.report.content.build_report`: the
  :class:`~medviewer.report.model.Report` of one case of the case store;
* :mod:`medviewer.report.deid` - DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile applied to
  a report, pseudonyms and :func:`~medviewer.report.deid.safe_basename` for file names;
* :mod:`medviewer.report.render` - key images with VOI, heat map and annotations (numpy + Pillow);
* :mod:`medviewer.report.pdf` - :func:`~medviewer.report.pdf.write_pdf` (reportlab);
* :mod:`medviewer.report.dicom_objects` - the TID 1500 SR (from the same report), heat-map SEG and SC;
* :mod:`medviewer.report.export` - :func:`~medviewer.report.export.export_case` and
  :func:`~medviewer.report.export.export_worklist_csv`.

Nothing is imported here, so ``import medviewer.report`` stays cheap (reportlab loads only when a PDF is written).
"""
