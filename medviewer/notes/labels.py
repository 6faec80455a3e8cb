"""The finding labels of the notes classifier: the 14 ChestX-ray14 findings (Wang et al., CVPR 2017) plus
"normal" (a report with no abnormality at all), as in the OpenI gold standard of NegBio (Peng et al., 2018)."""

FINDINGS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
    "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
LABELS = FINDINGS + ("normal",)
