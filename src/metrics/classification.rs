//! Classification (DF-C): the four forgery types, over the items whose
//! reference is a fake with a known type.

use serde::Serialize;

use crate::domain::ForgeryType;

/// `matrix[truth][predicted]`, in `ForgeryType::ALL` order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeConfusion {
    pub matrix: [[u64; 4]; 4],
}

fn index(t: ForgeryType) -> usize {
    ForgeryType::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

impl TypeConfusion {
    pub fn of(pairs: impl IntoIterator<Item = (ForgeryType, ForgeryType)>) -> TypeConfusion {
        let mut c = TypeConfusion::default();
        for (truth, predicted) in pairs {
            c.matrix[index(truth)][index(predicted)] += 1;
        }
        c
    }

    pub fn total(&self) -> u64 {
        self.matrix.iter().flatten().sum()
    }

    pub fn accuracy(&self) -> Option<f64> {
        let right: u64 = (0..4).map(|i| self.matrix[i][i]).sum();
        let n = self.total();
        (n > 0).then(|| right as f64 / n as f64)
    }

    /// F1 of one type (one-vs-rest); None when it never occurs on either side.
    pub fn f1(&self, t: ForgeryType) -> Option<f64> {
        let i = index(t);
        let tp = self.matrix[i][i];
        let predicted: u64 = (0..4).map(|r| self.matrix[r][i]).sum();
        let actual: u64 = self.matrix[i].iter().sum();
        (predicted + actual > 0).then(|| 2.0 * tp as f64 / (predicted + actual) as f64)
    }

    /// The mean F1 over the types that occur (as truth or prediction).
    pub fn macro_f1(&self) -> Option<f64> {
        let f1s: Vec<f64> = ForgeryType::ALL
            .iter()
            .filter_map(|t| self.f1(*t))
            .collect();
        (!f1s.is_empty()).then(|| f1s.iter().sum::<f64>() / f1s.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ForgeryType::*;

    #[test]
    fn perfect_and_all_wrong() {
        let perfect = TypeConfusion::of(ForgeryType::ALL.map(|t| (t, t)));
        assert_eq!(
            (perfect.accuracy(), perfect.macro_f1()),
            (Some(1.0), Some(1.0))
        );
        let wrong = TypeConfusion::of([(FaceSwap, FaceEditing), (FaceEditing, FaceSwap)]);
        assert_eq!((wrong.accuracy(), wrong.macro_f1()), (Some(0.0), Some(0.0)));
        assert_eq!(TypeConfusion::default().accuracy(), None);
    }

    #[test]
    fn macro_f1_averages_the_types_that_occur() {
        // Swap: 2 right, 1 called editing. Editing: 1 right.
        let c = TypeConfusion::of([
            (FaceSwap, FaceSwap),
            (FaceSwap, FaceSwap),
            (FaceSwap, FaceEditing),
            (FaceEditing, FaceEditing),
        ]);
        assert_eq!(c.accuracy(), Some(0.75));
        // Swap F1 = 2·2/(2+3) = 0.8; editing F1 = 2·1/(2+1) = 2/3.
        let expected = (0.8 + 2.0 / 3.0) / 2.0;
        assert!((c.macro_f1().unwrap() - expected).abs() < 1e-12);
        assert_eq!(c.f1(EntireFaceSynthesis), None);
        assert_eq!(c.matrix[0][2], 1, "truth swap, predicted editing");
    }
}
