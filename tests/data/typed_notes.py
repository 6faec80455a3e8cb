"""The typed-note test set: chest X-ray notes written the way radiologists type them, by hand, for this project.

    .venv/bin/python tests/data/typed_notes.py      # rewrites tests/data/typed_notes.jsonl from the list below

Each note was written and labelled by hand (no template, no generator). The set is a TEST set only: it is never
used to train, to pick an epoch or a threshold, or to write the classifier's abbreviation list
(medviewer/notes/normalize.py was written before it). Styles: ICU / on-call shorthand, preliminary reads, lists and
bullets, fragments ("PTX: none"), dictated prose, misspellings, hedges, long notes, normal notes.

Labels, per note, for the 14 findings + "normal": "present", "absent" or "uncertain". The conventions are the
project's (those of the OpenI gold standard the model is trained on, medviewer/notes/rules.py), written here so a
reader can check them:

* present: stated, also "likely", "probable", "c/w", "consistent with", "compatible with", small / trace / stable /
  unchanged / persistent / improving (still there);
* uncertain: "possible", "?", "questionable", "may / might / could", "cannot exclude", "r/o", "suspicious /
  concerning for", "suggestive of", "equivocal", and both sides of a differential "X vs Y" / "X or Y";
* absent: negated ("no", "w/o", "neg", "none", "resolved", "no longer seen", "removed") or not mentioned;
* normal: present only when no finding is present or uncertain and nothing else abnormal is mentioned (devices,
  granuloma, degenerative change, scoliosis, CHF, vascular congestion, opacity, old fractures ... make it absent);
* vocabulary: a hiatal hernia ("HH") is Hernia; "CHF" alone and "vascular congestion" are not Edema; "opacity" and
  "airspace disease" alone are neither Infiltration nor Consolidation nor Pneumonia; "collapse" is Atelectasis;
  "apical capping" and fissural thickening are Pleural_Thickening; "scarring" is not Fibrosis, "fibrotic" is; a
  "borderline" heart is Cardiomegaly, an "upper normal" one is not.
"""

from __future__ import annotations

import json
from pathlib import Path

LABELS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
          "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia", "normal")
CODES = {"atx": "Atelectasis", "cm": "Cardiomegaly", "eff": "Effusion", "inf": "Infiltration", "mass": "Mass",
         "nod": "Nodule", "pna": "Pneumonia", "ptx": "Pneumothorax", "cons": "Consolidation", "ed": "Edema",
         "emph": "Emphysema", "fib": "Fibrosis", "pt": "Pleural_Thickening", "hh": "Hernia"}

# (text, present codes, uncertain codes, other abnormality mentioned). Codes are space-separated.
NOTES: list[tuple[str, str, str, bool]] = [
    # --- ICU / on-call shorthand -----------------------------------------------------------------------------
    ("ETT 4 cm above carina. NGT in stomach. No PTX.", "", "", True),
    ("R IJ CVC tip SVC. no ptx", "", "", True),
    ("Lg R PTX w/ mediastinal shift. Call placed to Dr.", "ptx", "", False),
    ("sm L apical ptx, unchanged from AM film", "ptx", "", False),
    ("L chest tube in place, tiny residual apical PTX", "ptx", "", True),
    ("chest tube removed. no ptx.", "", "", False),
    ("bibasilar atx, sm b/l effs", "atx eff", "", False),
    ("worsening b/l airspace opacities c/w pulm edema", "ed", "", True),
    ("Pulm edema improved. Persistent small R eff.", "ed eff", "", False),
    ("cardiomeg + pulm vasc congestion, no frank edema", "cm", "", True),
    ("RLL consol c/w PNA", "cons pna", "", False),
    ("LLL opacity, atx vs PNA", "", "atx pna", True),
    ("retrocardiac opacity ?PNA", "", "pna", True),
    ("stable lines/tubes. ETT appropriate. b/l pl effs unchanged.", "eff", "", True),
    ("ETT tip at clavicles. R PICC. LLL collapse.", "atx", "", True),
    ("New L basilar consolidation, likely aspiration pna.", "cons pna", "", False),
    ("no ptx post line placement", "", "", True),
    ("Post thoracentesis: decreased R eff, no PTX.", "eff", "", False),
    ("R eff resolved, no ptx. lungs clear", "", "", False),
    ("Interstitial edema, cardiomeg, small effs bilat", "ed cm eff", "", False),
    ("heart enlarged. pulm edema. b/l effusions. Findings c/w CHF.", "cm ed eff", "", True),
    ("CHF exacerbation: interstitial edema and small bilateral effusions", "ed eff", "", True),
    ("no edema today, no effusion. heart nml size", "", "", False),
    ("Trach in place. Lungs clear. No eff/ptx.", "", "", True),
    ("Dobhoff tip in stomach. LLL atx.", "atx", "", True),
    ("Pneumo on the R, sm. Recommend repeat film.", "ptx", "", False),
    ("no pneumo", "", "", False),
    ("Extensive subcut air L chest wall. No PTX seen.", "", "", True),
    ("L PTX increased in size, now moderate", "ptx", "", False),
    ("PTX resolved after chest tube. tube in good position", "", "", True),
    # --- lists and fragments --------------------------------------------------------------------------------
    ("Findings:\n- cardiomeg\n- sm L eff\n- no PTX", "cm eff", "", False),
    ("- PTX: none\n- Effusion: small, R\n- Consolidation: none", "eff", "", False),
    ("PTX - neg\nEff - neg\nHeart - nml", "", "", False),
    ("1. RUL nodule 8 mm\n2. No effusion\n3. Heart normal", "nod", "", False),
    ("1) Cardiomegaly\n2) Mild pulmonary edema\n3) Small L effusion", "cm ed eff", "", False),
    ("Impression:\n1. No acute process.\n2. Old healed R rib fx.", "", "", True),
    ("* LLL atx\n* ?early PNA RLL\n* no ptx", "atx", "pna", False),
    ("Lines: none. Lungs: clear. Pleura: no eff, no ptx. Heart: nml.", "", "", False),
    ("Heart: enlarged. Lungs: hyperinflated, emphysematous. Pleura: clear.", "cm emph", "", True),
    ("lungs - clear\npleura - ok\nheart - borderline large", "cm", "", False),
    ("Nodule: ?\nMass: no\nEffusion: no", "", "nod", False),
    ("Atelectasis: L base. Effusion: trace L.", "atx eff", "", False),
    ("- HH\n- degenerative spine\n- lungs clear", "hh", "", True),
    ("Pneumothorax: no\nPneumonia: possible, RML", "", "pna", False),
    ("CM: none. Eff: none. PTX: none.", "", "", False),
    ("Edema: mild interstitial. Cardiomegaly: moderate.", "ed cm", "", False),
    ("Pleural thickening: L apical. Nodules: none.", "pt", "", False),
    ("Consolidation - RLL\nEffusion - small R\nPTX - none", "cons eff", "", False),
    ("fibrosis: bibasilar, chronic. no acute change", "fib", "", False),
    ("mass: R hilar, 4 cm. eff: none", "mass", "", False),
    # --- normal and near-normal ------------------------------------------------------------------------------
    ("NAD", "", "", False),
    ("Lungs clear. Heart nml. No eff or PTX.", "", "", False),
    ("No acute cardiopulmonary process.", "", "", False),
    ("nml cxr", "", "", False),
    ("clear lungs, no infiltrate, no effusion", "", "", False),
    ("Heart size WNL. Lungs clear w/o focal consolidation. No pleural effusion.", "", "", False),
    ("Normal chest. No PNA.", "", "", False),
    ("lungs clear bilat, no ptx, heart not enlarged", "", "", False),
    ("Unremarkable chest radiograph.", "", "", False),
    ("no acute findings. calcified granuloma LUL.", "", "", True),
    ("No acute dz. Mild thoracic spondylosis.", "", "", True),
    ("Clear lungs. Surgical clips RUQ.", "", "", True),
    ("Heart and lungs normal. Sternotomy wires intact.", "", "", True),
    ("no consolidation, effusion or pneumothorax. cardiomediastinal silhouette normal", "", "", False),
    ("neg for PNA", "", "", False),
    ("No evidence of pneumonia or CHF.", "", "", False),
    ("no focal airspace dz, no eff, no ptx, heart nl", "", "", False),
    ("Lungs are clear. No nodules or masses.", "", "", False),
    ("Stable normal chest.", "", "", False),
    ("No change. Lungs remain clear.", "", "", False),
    # --- misspellings ------------------------------------------------------------------------------------------
    ("small L pleural efusion", "eff", "", False),
    ("pnuemothorax on the right, moderate", "ptx", "", False),
    ("cardiomegally with pulmonary edma", "cm ed", "", False),
    ("bibasilar atelectsis", "atx", "", False),
    ("RLL consolidaton, c/w pnemonia", "cons pna", "", False),
    ("no pneumothorx", "", "", False),
    ("emphysemia, hyperinflated lungs", "emph", "", True),
    ("R upper lobe nodlue, 1 cm", "nod", "", False),
    ("pleural thickning at L apex", "pt", "", False),
    ("interstial fibrosis bilat lower lobes", "fib", "", False),
    ("Mild cardiomegly. No efusion.", "cm", "", False),
    ("L lower lobe infiltrat", "inf", "", False),
    ("no pnuemonia", "", "", False),
    ("smal R effusoin and R basilar atelactasis", "eff atx", "", False),
    ("hiatal herina", "hh", "", False),
    ("Lungs clear, no pnumothorax, no efusion.", "", "", False),
    # --- hedges ----------------------------------------------------------------------------------------------
    ("Possible small L effusion.", "", "eff", False),
    ("cannot r/o early RLL PNA", "", "pna", False),
    ("Questionable tiny R apical PTX, recommend expiratory view.", "", "ptx", False),
    ("Subtle RML opacity may represent early pneumonia.", "", "pna", True),
    ("Nodular density RUL ?nodule vs nipple shadow, repeat w/ nipple markers", "", "nod", True),
    ("Mild cardiomegaly. Could be some mild interstitial edema.", "cm", "ed", False),
    ("Hazy L base, ? small effusion", "", "eff", True),
    ("Findings suspicious for LUL mass. CT recommended.", "", "mass", False),
    ("Concerning for multifocal pneumonia.", "", "pna", False),
    ("Cannot exclude small pneumothorax.", "", "ptx", False),
    ("Equivocal LLL consolidation.", "", "cons", False),
    ("Suggestive of early pulm edema.", "", "ed", False),
    ("Streaky opacity L base, probably atx.", "atx", "", True),
    ("Likely small R effusion.", "eff", "", False),
    ("Probable RLL pneumonia.", "pna", "", False),
    ("Blunted L CPA, effusion vs pleural thickening.", "", "eff pt", True),
    ("RUL opacity, infiltrate or mass, CT advised", "", "inf mass", True),
    ("Possible HH.", "", "hh", False),
    ("Might be early fibrotic change at bases.", "", "fib", False),
    ("?emphysema", "", "emph", False),
    ("r/o PTX - none seen", "", "", False),
    ("eval for PNA: no consolidation, no PNA", "", "", False),
    ("possible tiny L ptx, no effusion, heart nml", "", "ptx", False),
    ("PTX?", "", "ptx", False),
    ("Subsegmental atx vs scar L base.", "", "atx", True),
    # --- several findings, mixed -------------------------------------------------------------------------
    ("Cardiomegaly. Small bilateral pleural effusions. Bibasilar atx. No PTX.", "cm eff atx", "", False),
    ("Emphysema. 2 cm RUL nodule, new. No eff.", "emph nod", "", False),
    ("COPD w/ emphysematous changes, no acute infiltrate", "emph", "", True),
    ("L hilar mass w/ post-obstructive LUL collapse", "mass atx", "", False),
    ("Multiple b/l pulmonary nodules c/w mets", "nod", "", True),
    ("HH. Lungs clear.", "hh", "", False),
    ("Large HH behind heart, no PNA", "hh", "", False),
    ("Hiatal hernia and mild cardiomegaly", "hh cm", "", False),
    ("Bilateral apical pleural thickening, chronic.", "pt", "", False),
    ("apical capping bilat, no ptx", "pt", "", False),
    ("Fibrotic changes both bases, unchanged. No new infiltrate.", "fib", "", False),
    ("Interstitial fibrosis and small R eff", "fib eff", "", False),
    ("RML infiltrate. heart nml. no effusion", "inf", "", False),
    ("patchy infiltrates both lungs, ? atypical pna", "inf", "pna", False),
    ("Dense RLL consolidation w/ air bronchograms. Small parapneumonic eff.", "cons eff", "", False),
    ("LUL mass 5 cm, L eff, no ptx", "mass eff", "", False),
    ("Emphysema + bullae R apex. No ptx.", "emph", "", True),
    ("sm R ptx and subcut emphysema after line attempt", "ptx", "", True),
    ("Mod cardiomeg. Pulm edema. L>R effs.", "cm ed eff", "", False),
    ("Hyperinflation. No focal consolidation. Small calcified granuloma.", "", "", True),
    ("Enlarged heart, no edema", "cm", "", False),
    ("Heart not enlarged. Small L effusion.", "eff", "", False),
    ("RLL & LLL atx, sm effs, ETT ok", "atx eff", "", True),
    ("Stable 6 mm LUL nod. Emphysema.", "nod emph", "", False),
    ("No new nodule. Known RUL mass unchanged.", "mass", "", False),
    ("No pleural thickening. Mild cardiomegaly.", "cm", "", False),
    ("Consolidation L base resolved. Residual atx.", "atx", "", False),
    ("Effusion resolved. Heart size normal. No PTX.", "", "", False),
    ("Pneumonia RLL improving. Small eff persists.", "pna eff", "", False),
    ("Clearing of prior edema. Mild cardiomegaly remains.", "cm", "", False),
    # --- dictated prose, longer ------------------------------------------------------------------------
    ("Comparison with the study from yesterday. The endotracheal tube has been removed. There is a new small left "
     "pleural effusion with adjacent atelectasis. No pneumothorax. Heart size is stable and mildly enlarged.",
     "eff atx cm", "", False),
    ("AP portable view. Lungs are hypoinflated. Bibasilar opacities likely reflect atelectasis, although early "
     "pneumonia at the right base cannot be excluded. No large effusion.", "atx", "pna", True),
    ("PA and lateral. The heart is normal in size. There is a 1.5 cm spiculated nodule in the right upper lobe, "
     "concerning for malignancy. Recommend CT. No effusion or pneumothorax.", "nod", "", True),
    ("Single portable view. Right internal jugular line tip in the lower SVC. No pneumothorax. Interval increase in "
     "diffuse interstitial opacities consistent with pulmonary edema. Small bilateral effusions.", "ed eff", "", True),
    ("The lungs are clear. There is no focal consolidation, pleural effusion, or pneumothorax. The heart and "
     "mediastinum are within normal limits. Mild degenerative changes of the thoracic spine.", "", "", True),
    ("Frontal and lateral views. Large left pleural effusion with near complete collapse of the left lower lobe. "
     "Mediastinal shift to the right. Right lung clear.", "eff atx", "", True),
    ("Hyperexpanded lungs with flattened hemidiaphragms and upper lobe predominant emphysema. No focal consolidation. "
     "Heart size normal.", "emph", "", True),
    ("Two views of the chest. Stable moderate cardiomegaly. No edema. Chronic blunting of the left costophrenic "
     "angle, likely pleural thickening. No acute infiltrate.", "cm pt", "", True),
    ("Patient rotated. Allowing for this, heart size normal. Small retrocardiac opacity could represent atelectasis "
     "or pneumonia. No effusion.", "", "atx pna", True),
    ("Chest, one view: interval placement of a left chest tube with resolution of the left pneumothorax. Small "
     "residual left pleural effusion. Subcutaneous emphysema along the left chest wall.", "eff", "", True),
    ("There is a large hiatal hernia. The lungs are otherwise clear. No effusion. Heart size is upper normal.", "hh",
     "", False),
    ("New patchy consolidation in the lingula and left lower lobe compatible with pneumonia in the appropriate "
     "clinical setting. No pleural effusion. Heart size normal.", "cons pna", "", False),
    ("Reticular opacities at both bases, compatible with pulmonary fibrosis, unchanged from prior. No superimposed "
     "consolidation. No effusion.", "fib", "", True),
    ("Left upper lobe mass measuring approximately 6 cm with ipsilateral hilar enlargement. Small left effusion. "
     "No pneumothorax.", "mass eff", "", True),
    ("Mild bibasilar atelectasis. Otherwise the lungs are clear. The cardiomediastinal silhouette is normal. No "
     "effusion, no pneumothorax, no pneumonia.", "atx", "", False),
    ("Findings: low lung volumes. Crowding of bronchovascular markings. No definite focal consolidation. Possible "
     "trace left pleural effusion. Impression: no pneumonia.", "", "eff", True),
    ("Preliminary read: no ptx, no acute process. final to follow", "", "", False),
    ("ED prelim - RLL infiltrate, ? pna, otherwise neg", "inf", "pna", False),
    ("Wet read: b/l effusions L>R, cardiomeg, ? edema", "eff cm", "ed", False),
    ("Outpatient f/u nodule: LUL nodule stable at 7 mm, no new nodules, no eff", "nod", "", False),
    ("Follow-up of pneumonia: RLL consolidation has resolved. No effusion. Lungs clear.", "", "", False),
    ("Compared with prior, increase in size of R effusion, now moderate, with compressive atx.", "eff atx", "", False),
    ("Lungs: emphysema, no nodules, no mass. Pleura: bilateral apical thickening. Heart: normal.", "emph pt", "",
     False),
    ("Portable. Tubes and lines unchanged. Diffuse bilateral airspace opacities, ARDS vs edema.", "", "ed", True),
    ("No PTX. No eff. No PNA. No CM.", "", "", False),
    ("Pt w/ cough x 3 wks. CXR: LLL PNA. no eff.", "pna", "", False),
    ("65M SOB. Cardiomegaly, pulm edema, small effs. Impression CHF.", "cm ed eff", "", True),
    ("Trauma. No PTX. No hemothorax. Acute R 5th and 6th rib fractures.", "", "", True),
    ("Post op day 1 CABG. Sternal wires. Mediastinal drains. LLL atx. Small L eff. No ptx.", "atx eff", "", True),
    ("f/u PTX - small L apical PTX decreased, now tiny", "ptx", "", False),
]


def records() -> list[dict]:
    out = []
    for n, (text, present, uncertain, other) in enumerate(NOTES, 1):
        labels = dict.fromkeys(LABELS, "absent")
        for c in present.split():
            labels[CODES[c]] = "present"
        for c in uncertain.split():
            assert labels[CODES[c]] == "absent", (text, c)
            labels[CODES[c]] = "uncertain"
        if not present.split() and not uncertain.split() and not other:
            labels["normal"] = "present"
        out.append({"id": f"typed-{n:03d}", "text": text, "labels": labels})
    return out


def main() -> None:
    recs = records()
    texts = [r["text"] for r in recs]
    assert len(set(texts)) == len(texts), "duplicate note"
    path = Path(__file__).with_suffix(".jsonl")
    with open(path, "w", encoding="utf-8") as fp:
        for r in recs:
            fp.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{path}: {len(recs)} notes")


if __name__ == "__main__":
    main()
