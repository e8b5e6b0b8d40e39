"""The default exemption codes a records officer may cite: Connecticut General Statutes section 1-210(b).

Short summaries for the drop-down and the decision log, not the statute's
text; an agency in another state replaces the list with `[archive.foia]
exemptions` in its configuration.
"""

from __future__ import annotations

CONNECTICUT: dict[str, str] = {
    "1-210(b)(1)": "Preliminary drafts or notes, where withholding clearly outweighs disclosure",
    "1-210(b)(2)": "Personnel, medical or similar files whose disclosure would invade personal privacy",
    "1-210(b)(3)": "Law enforcement records compiled in detecting or investigating crime",
    "1-210(b)(4)": "Strategy and negotiations on pending claims or litigation",
    "1-210(b)(5)": "Trade secrets, or commercial or financial information given in confidence",
    "1-210(b)(6)": "Test questions, scoring keys and other examination data",
    "1-210(b)(7)": "Real estate appraisals and estimates for acquiring property",
    "1-210(b)(8)": "Statements of personal worth or financial data required by a licensing agency",
    "1-210(b)(9)": "Strategy or negotiations on collective bargaining",
    "1-210(b)(10)": "Records exempt by other law; attorney-client and other privileged communications",
    "1-210(b)(11)": "Names or addresses of students, without consent",
    "1-210(b)(12)": "Information obtained by illegal means",
    "1-210(b)(13)": "Whistle-blower investigations and the name of the employee who reported",
    "1-210(b)(17)": "Educational records protected by FERPA (20 USC 1232g)",
    "1-210(b)(19)": "Records whose disclosure may result in a safety risk",
    "1-210(b)(20)": "Security details of information technology systems",
}
