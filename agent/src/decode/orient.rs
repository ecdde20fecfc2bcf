//! Page orientation from a decoded symbol's corner points.

use rxing::Point;

/// Clockwise page rotation (0/90/180/270) that brings a symbol whose top edge
/// runs from `top_left` to `top_right` (image coordinates, y down) upright.
pub(super) fn from_top_edge(top_left: Point, top_right: Point) -> u16 {
    let (dx, dy) = (top_right.x - top_left.x, top_right.y - top_left.y);
    if !(dx.is_finite() && dy.is_finite()) || (dx == 0.0 && dy == 0.0) {
        return 0;
    }
    // The edge's angle measured clockwise from +x; undoing it needs the
    // complementary clockwise turn.
    let angle = dy.atan2(dx).to_degrees();
    let quarter = ((angle / 90.0).round() as i32).rem_euclid(4);
    ((4 - quarter) % 4 * 90) as u16
}

#[cfg(test)]
mod tests {
    use super::from_top_edge;
    use rxing::Point;

    #[test]
    fn quarter_turns() {
        let p = |x, y| Point { x, y };
        assert_eq!(from_top_edge(p(0.0, 0.0), p(10.0, 1.0)), 0);
        // Top edge pointing down: the page was turned 90 cw, so turn 270 more.
        assert_eq!(from_top_edge(p(0.0, 0.0), p(0.0, 10.0)), 270);
        assert_eq!(from_top_edge(p(0.0, 0.0), p(-10.0, 0.0)), 180);
        assert_eq!(from_top_edge(p(0.0, 0.0), p(1.0, -10.0)), 90);
    }
}
