"""The face-like drawing the detection tests paste beside real faces (it must never win)."""
import cv2


def face_like_drawing(c, cx, cy, r, ink=90, paper=160):
    """Draw a face-like cartoon (outline, brows, eyes, nose, mouth) of half-height ``r`` centred at
    ``(cx, cy)`` into the grey or colour image ``c`` (in place)."""
    t = max(2, r // 10)
    cv2.ellipse(c, (cx, cy), (int(r * 0.8), r), 0, 0, 360, paper, -1)
    cv2.ellipse(c, (cx, cy), (int(r * 0.8), r), 0, 0, 360, ink, t)
    for dx in (-0.32, 0.32):
        cv2.ellipse(c, (int(cx + dx * r), int(cy - 0.2 * r)), (int(0.15 * r), int(0.08 * r)), 0, 0, 360, ink, -1)
        cv2.line(c, (int(cx + dx * r - 0.2 * r), int(cy - 0.38 * r)), (int(cx + dx * r + 0.2 * r), int(cy - 0.38 * r)),
                 ink, t)
    cv2.line(c, (cx, int(cy - 0.1 * r)), (cx, int(cy + 0.2 * r)), ink, t)
    cv2.ellipse(c, (cx, int(cy + 0.45 * r)), (int(0.3 * r), int(0.1 * r)), 0, 0, 360, ink, t)
