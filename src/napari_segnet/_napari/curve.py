"""A small live plot of the training loss and the validation AP, drawn with QPainter."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

LOSS_COLOUR = QColor(90, 160, 255)
AP_COLOUR = QColor(255, 170, 60)
SMOOTHING = 20  # steps in the loss's running mean


class TrainingCurve(QWidget):
    """Loss per step (blue, left scale) and validation AP@0.5 per epoch (orange, 0–1 right).

    Attributes
    ----------
    total_steps : int
        Steps of the whole run (the width of the plot).
    losses : list of float
        The loss of every step so far.
    scores : list of (int, float)
        ``(step, AP@0.5)`` of every validation so far.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.total_steps = 1
        self.losses: list[float] = []
        self.scores: list[tuple[int, float]] = []  # (step, AP@0.5)

    def reset(self, total_steps: int) -> None:
        """Clear the plot for a run of ``total_steps`` steps."""
        self.total_steps, self.losses, self.scores = max(total_steps, 1), [], []
        self.update()

    def add_loss(self, loss: float) -> None:
        """Append the loss of the next step."""
        self.losses.append(float(loss))
        if len(self.losses) % 5 == 0 or len(self.losses) == self.total_steps:
            self.update()  # repainting every step would cost more than the plot is worth

    def add_score(self, step: int, ap50: float) -> None:
        """Add a validation AP@0.5 measured after ``step`` steps."""
        if np.isfinite(ap50):
            self.scores.append((step, float(ap50)))
        self.update()

    def smoothed_losses(self) -> np.ndarray:
        """Return the running mean of the loss over the last :data:`SMOOTHING` steps."""
        losses = np.asarray(self.losses, float)
        if losses.size == 0:
            return losses
        sums = np.cumsum(np.insert(losses, 0, 0.0))
        counts = np.minimum(np.arange(1, losses.size + 1), SMOOTHING)
        return (sums[1:] - sums[np.arange(1, losses.size + 1) - counts]) / counts

    def paintEvent(self, event) -> None:
        """Draw the smoothed loss, the validation scores, their scales and the step count."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = self.palette().windowText().color()
        plot = QRectF(self.rect()).adjusted(38, 18, -34, -20)
        painter.setPen(QPen(text.darker(150), 1))
        painter.drawRect(plot)
        losses = self.smoothed_losses()
        top = float(losses.max()) * 1.05 if losses.size else 1.0

        def point(step, value, maximum):
            x = plot.left() + plot.width() * step / self.total_steps
            return QPointF(x, plot.bottom() - plot.height() * min(value / maximum, 1.0))

        if losses.size:
            painter.setPen(QPen(LOSS_COLOUR, 1.5))
            painter.drawPolyline(QPolygonF([point(i + 1, v, top) for i, v in enumerate(losses)]))
        if self.scores:
            painter.setPen(QPen(AP_COLOUR, 2))
            points = [point(step, ap, 1.0) for step, ap in self.scores]
            painter.drawPolyline(QPolygonF(points))
            painter.setBrush(AP_COLOUR)
            for p in points:
                painter.drawEllipse(p, 3, 3)
        painter.setPen(text)
        font = painter.font()
        font.setPointSizeF(max(font.pointSizeF() - 1, 6))
        painter.setFont(font)
        align_right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for value, y in ((top, plot.top()), (0.0, plot.bottom())):
            painter.drawText(QRectF(0, y - 8, 34, 16), align_right, f"{value:.2g}")
        for value, y in ((1.0, plot.top()), (0.0, plot.bottom())):
            painter.drawText(
                QRectF(plot.right() + 4, y - 8, 30, 16),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                f"{value:g}",
            )
        painter.setPen(LOSS_COLOUR)
        painter.drawText(QRectF(plot.left(), 0, plot.width() / 2, 16), "loss")
        painter.setPen(AP_COLOUR)
        last = f" {self.scores[-1][1]:.3f}" if self.scores else ""
        painter.drawText(
            QRectF(plot.center().x(), 0, plot.width() / 2, 16),
            align_right,
            f"validation AP@0.5{last}",
        )
        painter.setPen(text)
        painter.drawText(
            QRectF(plot.left(), plot.bottom() + 2, plot.width(), 16),
            Qt.AlignmentFlag.AlignCenter,
            f"{len(self.losses)} of {self.total_steps} steps",
        )
        painter.end()
